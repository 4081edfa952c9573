package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/metrics/procstat"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// Benchmarks of the pipeline against a real Redis and SMTP server. Run:
//
//	go test ./dispatcher -run '^$' -bench . -benchtime 1x
//
// BenchmarkPlanMillion seeds a million contacts; it runs only with
// MISSIVE_BENCH_MILLION=1.

// seedBench imports n contacts with email and SMS consent through the
// bulk import, and a campaign on the given channels.
func seedBench(b *testing.B, tb *testBundle, n int, kinds ...channels.Kind) {
	b.Helper()
	ctx := context.Background()
	s := tb.d.Store
	if err := s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}); err != nil {
		b.Fatal(err)
	}
	html := "<p>Hello {{default \"friend\" .Attr.first_name}},</p>" + strings.Repeat("<p>Autumn news, offers and stories from the shop.</p>\n", 24)
	if err := s.PutTemplate(ctx, &templates.Template{ID: "mail", Email: &templates.Email{Subject: "News for {{default \"you\" .Attr.first_name}}", HTML: html}}); err != nil {
		b.Fatal(err)
	}
	if err := s.PutTemplate(ctx, &templates.Template{ID: "sms", SMS: &templates.SMS{Body: "News!"}}); err != nil {
		b.Fatal(err)
	}
	const chunk = 50_000
	for start := 0; start < n; start += chunk {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for i := start; i < min(start+chunk, n); i++ {
			l := storepkg.ImportLine{Contact: dispatcher.Contact{ID: fmt.Sprintf("b%07d", i), Email: fmt.Sprintf("b%07d@example.com", i),
				Attributes: map[string]string{"first_name": "Ana"}, Tags: []string{"customer"}}}
			for _, k := range kinds {
				l.Consents = append(l.Consents, dispatcher.ConsentEvent{Channel: k, Topic: "newsletter", State: dispatcher.Granted, Source: "import"})
			}
			_ = enc.Encode(l)
		}
		if _, err := s.ImportContacts(ctx, &buf, "Europe/Paris", nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.PutSegment(ctx, &dispatcher.Segment{ID: "customers", TagsAll: []string{"customer"}}); err != nil {
		b.Fatal(err)
	}
	tpl := map[channels.Kind]string{channels.Email: "mail", channels.SMS: "sms"}
	c := &dispatcher.Campaign{ID: "bench", Topic: "newsletter", Segment: "customers", Channels: kinds, Templates: map[channels.Kind]string{}}
	for _, k := range kinds {
		c.Templates[k] = tpl[k]
	}
	if err := tb.d.Pipeline.CreateCampaign(ctx, c); err != nil {
		b.Fatal(err)
	}
}

// planBench starts the bench campaign and waits until the gate decided
// for its n sends; then it stops the timer and the gate (stopGate) and
// reports the recipients decided a second over the time it returns.
func planBench(b *testing.B, tb *testBundle, n int, stopGate func() error) time.Duration {
	run, err := tb.d.Pipeline.StartRun(context.Background(), "bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	waitFor(b, fmt.Sprintf("the gate to decide for %d sends", n), 10*time.Minute, func() bool {
		r, err := tb.d.Store.Run(context.Background(), run)
		if err != nil {
			b.Fatal(err)
		}
		return r.Counters["planned"] >= int64(n)
	})
	el := time.Since(start)
	b.StopTimer()
	if err := stopGate(); err != nil {
		b.Error(err)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "recipients/s")
	return el
}

// BenchmarkGate: recipients a second through plan and batch (decision
// recorded, send enqueued), all checks on.
func BenchmarkGate(b *testing.B) {
	n := benchN(200_000)
	for range b.N {
		tb := setup(b, withConfig(func(c *app.Config) { c.Concurrency = 32 }))
		seedBench(b, tb, n, channels.Email)
		stopGate := tb.startGate(3)
		b.ResetTimer()
		if os.Getenv("MISSIVE_BENCH_STATS") != "" {
			tb.redis.Client.ConfigResetStat(context.Background())
			defer printCommandStats(b, tb)
		}
		cpu0, self0 := redistest.CPU(b, tb.redis.Client), procstat.CPU()
		el := planBench(b, tb, n, stopGate)
		b.ReportMetric((redistest.CPU(b, tb.redis.Client)-cpu0)/el.Seconds(), "redis-cpu-share")
		b.ReportMetric((procstat.CPU()-self0)/el.Seconds(), "go-cpu-share")
	}
}

// BenchmarkDeliver: emails a second into a local SMTP server, from the
// start of the run to the last message, with the whole gate on.
func BenchmarkDeliver(b *testing.B) {
	n := benchN(50_000)
	for range b.N {
		_, msgs := deliverBench(b, n)
		size := 0
		for _, m := range msgs[:100] {
			size += len(m.Data)
		}
		b.ReportMetric(float64(size)/100, "bytes/email")
	}
}

// deliverBench runs the "bench" campaign to n contacts into the local
// SMTP server, with the limiter on but out of the way, and reports
// emails/s from the start of the run to the last message; opts change
// the setup. It fails b unless each message arrived and the run counts
// them sent.
func deliverBench(b *testing.B, n int, opts ...option) (*testBundle, []smtptest.Received) {
	b.Helper()
	opts = append([]option{withConfig(func(c *app.Config) {
		// The limiter is on, but the local server takes what comes.
		c.ProviderRates = map[channels.Kind]throttle.Rate{channels.Email: {Count: 100_000, Per: time.Second}}
		c.Concurrency = 32
	})}, opts...)
	tb := setup(b, opts...)
	seedBench(b, tb, n, channels.Email)
	stop := tb.startWorker(b)
	b.ResetTimer()
	start := time.Now()
	run, err := tb.d.Pipeline.StartRun(context.Background(), "bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	msgs := tb.smtp.Wait(n, 10*time.Minute)
	el := time.Since(start)
	b.StopTimer()
	stop()
	if len(msgs) != n {
		b.Fatalf("%d messages arrived, want %d", len(msgs), n)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "emails/s")
	if r, err := tb.d.Store.Run(context.Background(), run); err != nil || r.Counters["sent"] != int64(n) {
		b.Errorf("run: %v %v, want %d sent", r, err, n)
	}
	return tb, msgs
}

// BenchmarkPlanMillion: a million-contact segment planned and gated;
// reports the process's peak RSS.
func BenchmarkPlanMillion(b *testing.B) {
	if os.Getenv("MISSIVE_BENCH_MILLION") == "" {
		b.Skip("set MISSIVE_BENCH_MILLION=1 to plan a million contacts")
	}
	n := benchN(1_000_000)
	tb := setup(b)
	seedBench(b, tb, n, channels.Email)
	runtime.GC()
	debug.FreeOSMemory()
	before := procstat.PeakRSS()
	// Reset the high-water mark, so that the figure is the planning's own.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	stopGate := tb.startGate(3)
	b.ResetTimer()
	planBench(b, tb, n, stopGate)
	b.ReportMetric(float64(before)/(1<<20), "MB-peak-rss-seeding")
	b.ReportMetric(float64(procstat.PeakRSS())/(1<<20), "MB-peak-rss-planning")
}

func benchN(def int) int {
	if v, err := strconv.Atoi(os.Getenv("MISSIVE_BENCH_N")); err == nil && v > 0 {
		return v
	}
	return def
}

// printCommandStats logs what Redis spent per command
// (MISSIVE_BENCH_STATS=1).
func printCommandStats(b *testing.B, tb *testBundle) {
	info, _ := tb.redis.Client.Info(context.Background(), "commandstats").Result()
	for _, line := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(line, "cmdstat_") {
			fmt.Fprintln(os.Stderr, line)
		}
	}
}

// BenchmarkEraseContact erases a contact holding an email, a phone, a
// consent and cap reservations, with none and with a million unrelated
// keys in Redis: erasure finds what a contact has through its own indexes,
// so its cost must not grow with the keyspace. Run:
//
//	go test ./dispatcher/core -run '^$' -bench EraseContact -benchtime 200x
func BenchmarkEraseContact(b *testing.B) {
	for _, unrelated := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("unrelated=%d", unrelated), func(b *testing.B) {
			tb := setup(b)
			ctx := context.Background()
			rdb := tb.redis.Client
			const chunk = 10_000
			for start := 0; start < unrelated; start += chunk {
				pipe := rdb.Pipeline()
				for i := start; i < min(start+chunk, unrelated); i++ {
					pipe.Set(ctx, tb.redis.Prefix+":noise:"+strconv.Itoa(i), "x", 0)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			s := tb.d.Store
			now := time.Now()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				id := fmt.Sprintf("e%07d", i)
				c := &dispatcher.Contact{ID: id, Email: id + "@example.com", Phone: fmt.Sprintf("+336%08d", i)}
				if err := s.UpsertContact(ctx, c, "Europe/Paris"); err != nil {
					b.Fatal(err)
				}
				if err := s.RecordConsent(ctx, id, dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted, Source: "api"}); err != nil {
					b.Fatal(err)
				}
				for _, k := range channels.Kinds {
					req := throttle.CapRequest{Contact: id, Channel: string(k), Marketing: true, SendID: dispatcher.SendID("r", id, k)}
					if _, err := tb.d.Caps.Reserve(ctx, now, req); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := tb.d.Privacy.EraseContact(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
