package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Admin commands talk to a running Missive through its HTTP API, with the
// API key in MISSIVE_API_KEY (the secret of one MISSIVE_API_KEYS entry).

type adminClient struct {
	base, key string
	http      *http.Client
}

// newAdmin parses the flags of an admin command: the API's URL and key,
// and those that flags adds.
func newAdmin(name string, args []string, getenv func(string) string, stderr io.Writer, flags ...func(*flag.FlagSet)) (*adminClient, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("missive "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, f := range flags {
		f(fs)
	}
	a := &adminClient{http: &http.Client{Timeout: 0}}
	fs.StringVar(&a.base, "api-url", cmp.Or(getenv("MISSIVE_API_URL"), "http://localhost:8080"), "Missive's API base URL (MISSIVE_API_URL)")
	fs.StringVar(&a.key, "api-key", getenv("MISSIVE_API_KEY"), "API key secret (MISSIVE_API_KEY)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, errHelp
		}
		return nil, nil, errUsage
	}
	if a.key == "" {
		return nil, nil, errors.New("MISSIVE_API_KEY (--api-key): required")
	}
	a.base = strings.TrimRight(a.base, "/")
	return a, fs, nil
}

// do sends a request, with the headers given as name, value pairs, and
// decodes a JSON answer into out; API errors come back with their code,
// field and message.
func (a *adminClient) do(ctx context.Context, method, path string, body io.Reader, size int64, out any, hdr ...string) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Field, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			if e.Error.Field != "" {
				return fmt.Errorf("%s: %s: %s", e.Error.Code, e.Error.Field, e.Error.Message)
			}
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// importContacts runs "missive contacts import FILE": it streams an NDJSON
// file to POST /v1/contacts/import with a progress bar, then prints what
// was imported and the refused lines the answer lists (line number and
// field); it fails if any line was refused.
func importContacts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	a, fs, err := newAdmin("contacts import", args, getenv, stderr)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: missive contacts import [flags] contacts.ndjson")
		return errUsage
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions64(st.Size(), progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("importing"), progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond))
	var res struct {
		Lines, Imported, Failed int
		Errors                  []struct {
			Line           int
			Field, Message string
		}
		ErrorsCapped bool `json:"errors_capped"`
	}
	body := progressbar.NewReader(f, bar)
	if err := a.do(ctx, http.MethodPost, "/v1/contacts/import", &body, st.Size(), &res); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_ = bar.Finish()
	fmt.Fprintf(stdout, "\nimported %d contacts, %d lines refused (of %d lines)\n", res.Imported, res.Failed, res.Lines)
	if res.Failed > 0 {
		fmt.Fprintln(stdout, "refused lines (nothing of them was written):")
	}
	for _, e := range res.Errors {
		if e.Field == "" {
			fmt.Fprintf(stdout, "  line %d: %s\n", e.Line, e.Message)
		} else {
			fmt.Fprintf(stdout, "  line %d: %s %s\n", e.Line, e.Field, e.Message)
		}
	}
	if res.ErrorsCapped {
		fmt.Fprintf(stdout, "  ... and %d more refused lines, not listed\n", res.Failed-len(res.Errors))
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d lines refused", res.Failed)
	}
	return nil
}
