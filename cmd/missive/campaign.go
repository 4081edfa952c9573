package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

const campaignUsage = `usage:
  missive campaign create campaign.json
  missive campaign schedule ID schedule.json
  missive campaign start [-key KEY] [-new-run] ID
  missive campaign pause|resume|cancel [-run RUN] ID
  missive campaign status ID
  missive campaign watch [-every 1s] ID`

// campaign runs "missive campaign create|schedule|start|pause|resume|cancel|status|watch".
func campaign(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, campaignUsage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stdout, campaignUsage+"\n\nRun \"missive campaign <verb> -h\" for a verb's flags.")
		return errHelp
	}
	verb := args[0]
	var key, run string
	var newRun bool
	every := time.Second
	a, fs, err := newAdmin("campaign "+verb, args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		switch verb {
		case "start":
			fs.StringVar(&key, "key", "", "Idempotency-Key: a start repeated with the same key makes one run")
			fs.BoolVar(&newRun, "new-run", false, "start a run although one is under way or the campaign completed")
		case "pause", "resume", "cancel":
			fs.StringVar(&run, "run", "", "act on this run only")
		case "watch":
			fs.DurationVar(&every, "every", time.Second, "how often to refresh")
		}
	})
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 || len(rest) > 2 || (len(rest) == 2) != (verb == "schedule") {
		fmt.Fprintln(stderr, campaignUsage)
		return errUsage
	}
	id := rest[0]
	switch verb {
	case "create":
		b, err := os.ReadFile(id)
		if err != nil {
			return err
		}
		var c dispatcher.Campaign
		if err := a.do(ctx, http.MethodPost, "/v1/campaigns", bytes.NewReader(b), int64(len(b)), &c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s created (%s)\n", c.ID, c.State)
	case "schedule":
		b, err := os.ReadFile(rest[1])
		if err != nil {
			return err
		}
		var c campaignView
		if err := a.do(ctx, http.MethodPost, "/v1/campaigns/"+id+"/schedule", bytes.NewReader(b), int64(len(b)), &c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s scheduled\n", id)
		printNextFires(stdout, c.NextFires)
	case "start":
		var body []byte
		if newRun {
			body = []byte(`{"new_run":true}`)
		}
		var hdr []string
		if key != "" {
			hdr = []string{"Idempotency-Key", key}
		}
		var out struct {
			Run     string
			Created bool
		}
		if err := a.do(ctx, http.MethodPost, "/v1/campaigns/"+id+"/start", bytes.NewReader(body), int64(len(body)), &out, hdr...); err != nil {
			return err
		}
		if out.Created {
			fmt.Fprintf(stdout, "campaign %s: run %s started\n", id, out.Run)
		} else {
			fmt.Fprintf(stdout, "campaign %s: run %s was started before with this key\n", id, out.Run)
		}
	case "pause", "resume", "cancel":
		if run != "" {
			var r dispatcher.Run
			if err := a.do(ctx, http.MethodPost, "/v1/runs/"+run+"/"+verb, nil, 0, &r); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "run %s: %s\n", r.ID, r.State)
			return nil
		}
		var c dispatcher.Campaign
		if err := a.do(ctx, http.MethodPost, "/v1/campaigns/"+id+"/"+verb, nil, 0, &c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s: %s\n", id, c.State)
	case "status":
		c, runs, err := campaignStatus(ctx, a, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s: %s\n", c.ID, c.State)
		printNextFires(stdout, c.NextFires)
		for _, r := range runs {
			fmt.Fprintln(stdout)
			printRun(stdout, r)
		}
	case "watch":
		return watchCampaign(ctx, a, id, every, stdout)
	default:
		fmt.Fprintln(stderr, campaignUsage)
		return errUsage
	}
	return nil
}

// campaignView is a campaign as the API shows it.
type campaignView struct {
	dispatcher.Campaign
	NextFires []time.Time `json:"next_fires"`
}

// runStats is a run as the stats route shows it.
type runStats struct {
	dispatcher.Run
	Decisions map[string]int64 `json:"decisions"`
}

func campaignStatus(ctx context.Context, a *adminClient, id string) (*campaignView, []runStats, error) {
	var c campaignView
	if err := a.do(ctx, http.MethodGet, "/v1/campaigns/"+id, nil, 0, &c); err != nil {
		return nil, nil, err
	}
	var stats struct{ Runs []runStats }
	if err := a.do(ctx, http.MethodGet, "/v1/campaigns/"+id+"/stats", nil, 0, &stats); err != nil {
		return nil, nil, err
	}
	return &c, stats.Runs, nil
}

func printNextFires(w io.Writer, fires []time.Time) {
	if len(fires) == 0 {
		return
	}
	s := make([]string, len(fires))
	for i, t := range fires {
		s[i] = t.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "next fires: %s\n", strings.Join(s, ", "))
}

// inflight are the outcomes of sends that have not ended yet.
var inflight = []string{dispatcher.StateQueued, dispatcher.StateDeferred, dispatcher.StateSending}

// printRun prints a run's every outcome, so that the column adds up to
// what was planned, then what the gate decided and what came back.
func printRun(w io.Writer, r runStats) {
	fmt.Fprintf(w, "run %s: %s, fired %s", r.ID, r.State, r.FireAt.Format(time.RFC3339))
	if !r.Finished.IsZero() {
		fmt.Fprintf(w, ", finished %s", r.Finished.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if r.PausedReason != "" {
		fmt.Fprintf(w, "paused itself: %s\n", r.PausedReason)
	}
	names := outcomeOrder(r.Counters)
	planned := r.Counters["planned"]
	nw, dw := len("= total"), len(fmt.Sprint(planned))
	var sum int64
	for _, name := range names {
		nw, dw = max(nw, len(name)), max(dw, len(fmt.Sprint(r.Counters[name])))
		sum += r.Counters[name]
	}
	for _, name := range names {
		fmt.Fprintf(w, "  %-*s %*d\n", nw, name, dw, r.Counters[name])
	}
	balance := "balanced"
	if sum != planned {
		balance = fmt.Sprintf("NOT balanced: %d unaccounted", planned-sum)
	}
	fmt.Fprintf(w, "  %-*s %*d of %d planned, %s\n", nw, "= total", dw, sum, planned, balance)
	printCounts(w, "gate decided", r.Decisions)
	printCounts(w, "feedback", r.Feedback)
}

// outcomeOrder lists a run's outcomes: in flight first, then what left,
// then every reason a send did not, by name.
func outcomeOrder(c map[string]int64) []string {
	first := append(slices.Clone(inflight), dispatcher.StateSent, dispatcher.StateDelivered, dispatcher.StateBounced, dispatcher.StateFailed, dispatcher.StateCancelled)
	var out, rest []string
	for _, k := range first {
		if c[k] != 0 {
			out = append(out, k)
		}
	}
	for k, v := range c {
		if k != "planned" && v != 0 && !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

func printCounts(w io.Writer, what string, m map[string]int64) {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "%s: %s\n", what, strings.Join(parts, ", "))
	}
}

// watchCampaign shows the newest run's progress every tick until it
// finishes, then its full status.
func watchCampaign(ctx context.Context, a *adminClient, id string, every time.Duration, w io.Writer) error {
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	var lastDone int64
	var lastAt time.Time
	for {
		_, runs, err := campaignStatus(ctx, a, id)
		if err != nil {
			return err
		}
		if len(runs) > 0 {
			r := runs[0]
			if r.State == dispatcher.RunCompleted || r.State == dispatcher.RunCancelled {
				printRun(w, r)
				return nil
			}
			var waiting int64
			for _, k := range inflight {
				waiting += r.Counters[k]
			}
			planned := r.Counters["planned"]
			done, now := planned-waiting, time.Now()
			rate := ""
			if !lastAt.IsZero() {
				rate = fmt.Sprintf(", %.0f/s", float64(done-lastDone)/now.Sub(lastAt).Seconds())
			}
			lastDone, lastAt = done, now
			fmt.Fprintf(w, "%s run %s %s: %d of %d planned done%s; queued %d, deferred %d, sending %d, sent %d\n",
				now.Format(time.TimeOnly), r.ID, r.State, done, planned, rate,
				r.Counters[dispatcher.StateQueued], r.Counters[dispatcher.StateDeferred], r.Counters[dispatcher.StateSending],
				r.Counters[dispatcher.StateSent])
		} else {
			fmt.Fprintf(w, "%s campaign %s has no run yet\n", time.Now().Format(time.TimeOnly), id)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
