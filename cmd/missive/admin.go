package main

import (
	"bytes"
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
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Admin commands talk to a running Missive through its HTTP API, with the
// API key in MISSIVE_API_KEY (the secret of one MISSIVE_API_KEYS entry).

type adminClient struct {
	base, key string
	http      *http.Client
}

func newAdmin(name string, args []string, getenv func(string) string, stderr io.Writer) (*adminClient, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("missive "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := &adminClient{http: &http.Client{Timeout: 0}}
	fs.StringVar(&a.base, "api-url", cmp.Or(getenv("MISSIVE_API_URL"), "http://localhost:8080"), "Missive's API base URL (MISSIVE_API_URL)")
	fs.StringVar(&a.key, "api-key", getenv("MISSIVE_API_KEY"), "API key secret (MISSIVE_API_KEY)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, errUsage
	}
	if a.key == "" {
		return nil, nil, errors.New("MISSIVE_API_KEY (--api-key): required")
	}
	a.base = strings.TrimRight(a.base, "/")
	return a, fs, nil
}

// do sends a request and decodes a JSON answer into out; API errors come
// back with their code, field and message.
func (a *adminClient) do(ctx context.Context, method, path string, body io.Reader, size int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
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

// importContacts streams an NDJSON file to POST /v1/contacts/import with a
// progress bar, then prints what was imported and the first errors.
func importContacts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	a, fs, err := newAdmin("import", args, getenv, stderr)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: missive import [flags] contacts.ndjson")
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
		Imported, Failed int
		Errors           []struct {
			Line           int
			Field, Message string
		}
	}
	body := progressbar.NewReader(f, bar)
	if err := a.do(ctx, http.MethodPost, "/v1/contacts/import", &body, st.Size(), &res); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_ = bar.Finish()
	fmt.Fprintf(stdout, "\nimported %d contacts, %d lines refused\n", res.Imported, res.Failed)
	for _, e := range res.Errors {
		fmt.Fprintf(stdout, "  line %d: %s %s\n", e.Line, e.Field, e.Message)
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d lines refused", res.Failed)
	}
	return nil
}

// campaign runs "missive campaign create|schedule|start|pause|resume|cancel|status".
func campaign(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = `usage:
  missive campaign create campaign.json
  missive campaign schedule ID schedule.json
  missive campaign start|pause|resume|cancel ID
  missive campaign status ID`
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	verb := args[0]
	a, fs, err := newAdmin("campaign "+verb, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	rest := fs.Args()
	fileBody := func(name string) (io.Reader, int64, error) {
		b, err := os.ReadFile(name)
		return bytes.NewReader(b), int64(len(b)), err
	}
	switch {
	case verb == "create" && len(rest) == 1:
		body, n, err := fileBody(rest[0])
		if err != nil {
			return err
		}
		var c struct{ ID, State string }
		if err := a.do(ctx, http.MethodPost, "/v1/campaigns", body, n, &c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s created (%s)\n", c.ID, c.State)
	case verb == "schedule" && len(rest) == 2:
		body, n, err := fileBody(rest[1])
		if err != nil {
			return err
		}
		if err := a.do(ctx, http.MethodPost, "/v1/campaigns/"+rest[0]+"/schedule", body, n, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s scheduled\n", rest[0])
	case (verb == "start" || verb == "pause" || verb == "resume" || verb == "cancel") && len(rest) == 1:
		var out map[string]any
		if err := a.do(ctx, http.MethodPost, "/v1/campaigns/"+rest[0]+"/"+verb, nil, 0, &out); err != nil {
			return err
		}
		if run, ok := out["run"].(string); ok {
			fmt.Fprintf(stdout, "campaign %s: run %s started\n", rest[0], run)
		} else {
			fmt.Fprintf(stdout, "campaign %s: %s\n", rest[0], out["state"])
		}
	case verb == "status" && len(rest) == 1:
		var out struct {
			Runs []struct {
				ID, State string
				FireAt    time.Time `json:"fire_at"`
				Counters  map[string]int64
				Balanced  bool
			}
		}
		if err := a.do(ctx, http.MethodGet, "/v1/campaigns/"+rest[0]+"/stats", nil, 0, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "run\tstate\tfired\tplanned\tsent\tfailed\tdeferred\tqueued\tbalanced")
		for _, r := range out.Runs {
			c := r.Counters
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%v\n", r.ID, r.State, r.FireAt.Format(time.RFC3339),
				c["planned"], c["sent"], c["failed"], c["deferred"], c["queued"], r.Balanced)
		}
		tw.Flush()
	default:
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	return nil
}
