package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
	"unicode"
)

// healthCommand runs "missive health [URL]": a GET of URL that succeeds
// (exit 0) on a 2xx answer and fails (exit 1, saying why) otherwise. It is
// the healthcheck of container images that have no curl, so it needs no
// setting; the default URL is the ops listener's /readyz on this host, at
// MISSIVE_OPS_ADDR when it is set (":9090" otherwise).
func healthCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("missive health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: missive health [--timeout 5s] [URL]\n\n"+
			"GETs URL (default %s) and exits 0 on a 2xx answer, 1 otherwise.\n"+
			"The default follows MISSIVE_OPS_ADDR when it is set.\n\n", defaultHealthURL(getenv))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if fs.NArg() > 1 || *timeout <= 0 {
		fs.Usage()
		return errUsage
	}
	target := defaultHealthURL(getenv)
	if fs.NArg() == 1 {
		target = fs.Arg(0)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("health: URL: want http:// or https:// and a host")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, below
		}
		return fmt.Errorf("health: %s: %w", u.Redacted(), err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	why := oneLine(string(body))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		if why != "" {
			return fmt.Errorf("health: %s: %s: %s", u.Redacted(), res.Status, why)
		}
		return fmt.Errorf("health: %s: %s", u.Redacted(), res.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", u.Redacted(), res.Status)
	return nil
}

// defaultHealthURL is the ops listener's /readyz: at the address of
// MISSIVE_OPS_ADDR when it names one, with the loopback for a listener on
// every interface (":9090", "0.0.0.0:9090").
func defaultHealthURL(getenv func(string) string) string {
	host, port := "127.0.0.1", "9090"
	if h, p, err := net.SplitHostPort(getenv("MISSIVE_OPS_ADDR")); err == nil {
		if p != "" && p != "0" {
			port = p
		}
		if ip, err := netip.ParseAddr(h); h != "" && (err != nil || !ip.Unmap().IsUnspecified()) {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}

// oneLine squeezes an answer's body into one printable line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// versionCommand runs "missive version": the module's version and the VCS
// revision the binary was built from, as the Go toolchain recorded them.
func versionCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprintln(stdout, "usage: missive version   the module version and VCS revision of this binary")
			return errHelp
		}
		fmt.Fprintln(stderr, "usage: missive version")
		return errUsage
	}
	fmt.Fprintln(stdout, versionLine())
	return nil
}

// buildRevision is the revision of builds without the VCS at hand (a
// container image's context has no .git): go build -ldflags
// "-X main.buildRevision=$(git rev-parse HEAD)". The toolchain's record wins.
var buildRevision string

// versionLine is "missive <module version> <revision>[-dirty] (<time>, <go version>)",
// "unknown" for what the build did not record.
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "missive unknown (no build information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "unknown"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	switch {
	case rev == "" && buildRevision != "":
		rev = buildRevision
	case rev == "":
		rev = "unknown"
	case settings["vcs.modified"] == "true":
		rev += "-dirty"
	}
	var extra []string
	if t := settings["vcs.time"]; t != "" {
		extra = append(extra, t)
	}
	extra = append(extra, info.GoVersion)
	return fmt.Sprintf("missive %s %s (%s)", version, rev, strings.Join(extra, ", "))
}
