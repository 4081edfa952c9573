package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/testkit"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle/redistest"
)

const opsSecret = "ops-secret-ops-secret-ops-secret-ops"

// opsEnv is the environment of a worker on the Redis at url under prefix,
// its operations listener on a free port.
func opsEnv(t *testing.T, url, prefix string) map[string]string {
	return map[string]string{
		"MISSIVE_REDIS_URL":  url,
		"MISSIVE_PREFIX":     prefix,
		"MISSIVE_OPS_ADDR":   "127.0.0.1:0",
		"MISSIVE_SECRET":     opsSecret,
		"MISSIVE_DATA_KEYS":  "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MISSIVE_API_KEYS":   "ops:ops-api-key-0123456789",
		"MISSIVE_OUTBOX_DIR": t.TempDir(),
	}
}

// startRole runs "missive <role>" as the binary would, and returns the
// base URL of its operations listener, its logs, and a stop that ends it
// and returns its exit code.
func startRole(t *testing.T, role string, env map[string]string) (ops string, logs *testkit.LogBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs = &testkit.LogBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{role}, func(k string) string { return env[k] }, pw, logs)
		pw.Close()
	}()
	code, stopped := 0, false
	stop = func() int {
		if !stopped {
			cancel()
			code, stopped = <-done, true
		}
		return code
	}
	t.Cleanup(func() { stop() })
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "missive: operations on "); ok {
			ops, _, _ = strings.Cut(rest, " ")
			go io.Copy(io.Discard, pr)
			return ops, logs, stop
		}
	}
	t.Fatalf("missive %s did not start: %s", role, logs.String())
	return "", nil, nil
}

// get answers a GET of url: its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// scrape reads the metrics at ops.
func scrape(t *testing.T, ops string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := get(t, ops+"/metrics")
	if status != 200 {
		t.Fatalf("GET /metrics: %d: %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// labels (a histogram's count), 0 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	v, _ := sample(fams, name, labels)
	return v
}

// sample is value, and whether there is such a sample.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// A worker serves its metrics on the operations listener: after a small
// campaign, the gate's decisions, the sends and the queues show in them,
// with no address, number or id in any label; its logs are JSON lines.
func TestOpsWorkerMetrics(t *testing.T) {
	r := redistest.New(t)
	smtp := smtptest.New(t)
	env := opsEnv(t, r.URL, r.Prefix)
	env["MISSIVE_SMTP_URL"] = smtp.URL()
	env["MISSIVE_EMAIL_FROM"] = "Shop <news@shop.example>"
	env["MISSIVE_LOG_FORMAT"] = "json"
	env["MISSIVE_LOG_LEVEL"] = "debug"
	// SMS hours 12 hours away from now: the SMS waits in the queue.
	h := (time.Now().In(paris(t)).Hour() + 12) % 24
	env["MISSIVE_QUIET_SMS"] = fmt.Sprintf("daily %02d:00-%02d:30", h, h)

	ctx := context.Background()
	d := opsDispatcher(t, r)
	contacts := `{"id":"cust-7781","email":"ana.martin@shop.example","phone":"+33612345678","tags":["news"]}
{"id":"cust-7782","tags":["news"]}
{"id":"cust-7783","email":"gone@shop.example","tags":["news"]}
`
	if res, err := d.Store.ImportContacts(ctx, strings.NewReader(contacts), "Europe/Paris", nil); err != nil || res.Imported != 3 {
		t.Fatalf("import: %+v %v", res, err)
	}
	must(t, d.Store.Suppress(ctx, channels.Email, "gone@shop.example", dispatcher.SuppressBounce, time.Time{}))
	must(t, d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "orders", Name: "Orders", Kind: dispatcher.Transactional}))
	must(t, d.Store.PutTemplate(ctx, &templates.Template{ID: "note",
		Email: &templates.Email{Subject: "Your order", Text: "Your order left."},
		SMS:   &templates.SMS{Body: "Your order left."}}))
	must(t, d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "news", TagsAll: []string{"news"}}))
	must(t, d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "spring-sale", Topic: "orders", Segment: "news",
		Channels: []channels.Kind{channels.Email, channels.SMS}, Templates: map[channels.Kind]string{channels.Email: "note", channels.SMS: "note"}}))

	ops, logs, stop := startRole(t, "worker", env)
	if status, _ := get(t, ops+"/healthz"); status != 200 {
		t.Errorf("/healthz: %d", status)
	}
	if status, _ := get(t, ops+"/readyz"); status != 200 {
		t.Errorf("/readyz: %d", status)
	}
	st, err := d.Pipeline.Start(ctx, "spring-sale", pipeline.StartOptions{})
	must(t, err)
	if _, err := smtp.Await(ctx, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	var fams map[string]*dto.MetricFamily
	waitFor(t, "the send and the waiting SMS show in the metrics", 30*time.Second, func() bool {
		fams = scrape(t, ops)
		return value(fams, "missive_sends_total", map[string]string{"channel": "email", "outcome": "sent"}) == 1 &&
			value(fams, "missive_queue_tasks", map[string]string{"queue": "send", "state": "scheduled"}) >= 1
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"missive_gate_decisions_total", map[string]string{"channel": "email", "reason": "queued"}, 1},
		{"missive_gate_decisions_total", map[string]string{"channel": "email", "reason": "suppressed_bounce"}, 1},
		{"missive_gate_decisions_total", map[string]string{"channel": "email", "reason": "no_address"}, 1},
		{"missive_gate_decisions_total", map[string]string{"channel": "sms", "reason": "deferred"}, 1},
		{"missive_gate_decisions_total", map[string]string{"channel": "sms", "reason": "no_address"}, 2},
		{"missive_provider_call_duration_seconds", map[string]string{"channel": "email"}, 1},
	} {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if f := fams["missive_redis_errors_total"]; f != nil {
		t.Errorf("Redis errors counted in a healthy run: %v", f.GetMetric())
	}
	for _, name := range []string{"missive_queue_latency_seconds", "go_goroutines", "process_resident_memory_bytes", "missive_scheduler_leader"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s in the metrics", name)
		}
	}
	for _, q := range []string{"plan", "batch", "send"} {
		if _, ok := sample(fams, "missive_queue_tasks", map[string]string{"queue": q, "state": "pending"}); !ok {
			t.Errorf("queue %s: no pending count in the metrics", q)
		}
	}
	// No label value names a person, a run, a campaign or a contact.
	private := []string{"@", "+33", "612345678", "cust-", "spring", st.Run, r.Prefix}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, p := range private {
					if strings.Contains(l.GetValue(), p) {
						t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}

	if code := stop(); code != 0 {
		t.Fatalf("worker exited %d: %s", code, logs.String())
	}
	out := logs.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("only %d log lines: %s", len(lines), out)
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %d is not JSON: %v: %s", i+1, err, line)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log line %d lacks time, level or msg: %s", i+1, line)
		}
	}
	for _, p := range []string{"ana.martin@shop.example", "gone@shop.example", "+33612345678", "612345678"} {
		if strings.Contains(out, p) {
			t.Errorf("logs contain personal data")
		}
	}
}

// opsDispatcher is a Dispatcher on the test's Redis, for seeding: its
// channels never send.
func opsDispatcher(t *testing.T, r *redistest.Redis) *apppkg.Dispatcher {
	t.Helper()
	keys, err := parseDataKeys("k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	must(t, err)
	rdb, err := store.Dial(context.Background(), r.URL)
	must(t, err)
	t.Cleanup(func() { rdb.Close() })
	d, err := apppkg.New(apppkg.Config{Redis: rdb, Prefix: r.Prefix, Secret: []byte(opsSecret), DataKeys: keys,
		Channels: map[channels.Kind]channels.Channel{channels.Email: nopChannel, channels.SMS: nopChannel},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, err)
	return d
}

func paris(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	must(t, err)
	return loc
}

// /readyz answers 503 while Redis is down and 200 once it is back; the
// metrics are served all the while and count the failed commands.
func TestOpsReadyzFollowsRedis(t *testing.T) {
	rs := startRedis(t, "redis")
	ops, logs, stop := startRole(t, "worker", opsEnv(t, "redis://"+rs.addr(), "ops"))
	if status, body := get(t, ops+"/readyz"); status != 200 {
		t.Fatalf("/readyz with Redis up: %d %s", status, body)
	}
	rs.kill()
	waitFor(t, "/readyz answers 503", 20*time.Second, func() bool {
		status, _ := get(t, ops+"/readyz")
		return status == http.StatusServiceUnavailable
	})
	if status, _ := get(t, ops+"/healthz"); status != 200 {
		t.Errorf("/healthz with Redis down: %d, want 200", status)
	}
	fams := scrape(t, ops)
	if n := value(fams, "missive_redis_errors_total", map[string]string{"kind": "network"}); n == 0 {
		t.Errorf("no Redis network error counted with Redis down")
	}
	rs.start()
	rs.waitReady()
	waitFor(t, "/readyz answers 200 again", 20*time.Second, func() bool {
		status, _ := get(t, ops+"/readyz")
		return status == 200
	})
	if code := stop(); code != 0 {
		t.Fatalf("worker exited %d: %s", code, logs.String())
	}
}

// A log format other than text or json is refused, naming the setting,
// and so is an empty operations address.
func TestOpsSettingsRefused(t *testing.T) {
	for _, c := range []struct{ key, value, flag string }{
		{"MISSIVE_LOG_FORMAT", "xml", ""},
		{"MISSIVE_LOG_FORMAT", "JSON ", ""},
		{"MISSIVE_OPS_ADDR", "", "--ops-addr="},
	} {
		env := opsEnv(t, "redis://127.0.0.1:1", "ops")
		env[c.key] = c.value
		args := []string{"worker"}
		if c.flag != "" {
			args = append(args, c.flag)
		}
		var stderr bytes.Buffer
		code := Main(context.Background(), args, func(k string) string { return env[k] }, io.Discard, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), c.key) {
			t.Errorf("%s=%q: exit %d, %q; want an error naming %s", c.key, c.value, code, stderr.String(), c.key)
		}
	}
}

// The public API listener has no /metrics: they are on the operations
// listener only.
func TestAPIServesNoMetrics(t *testing.T) {
	base := startMain(t, smtptest.New(t), twiliotest.NewServer(t))
	if status, _ := get(t, base+"/metrics"); status == 200 {
		t.Errorf("GET /metrics on the API: 200, want none")
	}
}
