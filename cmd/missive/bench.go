package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/metrics/procstat"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle/redistest"
)

// The bench measures Missive on the machine it runs on, with the settings
// a fresh "missive serve" has: the same config code, only the required
// settings filled (made-up secrets, a local SMTP sink, a Twilio double,
// both in a child process: benchpeer.go). Timings live here, never in
// tests.

// benchFigures are the figures the bench can measure, in the order it
// measures them.
var benchFigures = []string{"email", "gate", "sms"}

// benchOptions are the bench's own flags.
type benchOptions struct {
	contacts, gateContacts, sms int
	smsRate                     string
	only                        string
	json                        bool
	fail429Every                int
	cpuProfile, memProfile      string
}

// benchResult is what one figure measured. Per-message figures divide by
// N: emails at the sink, recipients through the gate, SMS at the double.
type benchResult struct {
	Figure         string         `json:"figure"`
	N              int            `json:"n"`
	Seconds        float64        `json:"seconds"`
	PerSecond      float64        `json:"per_second"`
	FirstMessageMS float64        `json:"first_message_ms,omitempty"`
	BytesPerMsg    float64        `json:"bytes_per_email,omitempty"`
	CPUProcessUS   float64        `json:"cpu_process_us_per_msg"`
	CPUPeersUS     float64        `json:"cpu_peers_us_per_msg"`
	CPURedisUS     float64        `json:"cpu_redis_us_per_msg"`
	RedisCmds      float64        `json:"redis_commands_per_msg"`
	TopCommands    []commandCount `json:"top_commands"`
	PeakRSSMB      float64        `json:"peak_rss_mb"`
	RedisPeakMB    float64        `json:"redis_used_memory_peak_mb"`
	RateConfigured float64        `json:"sms_rate_configured,omitempty"`
	RateAchieved   float64        `json:"sms_rate_achieved,omitempty"`
	RateDeviation  float64        `json:"sms_rate_deviation_pct,omitempty"`
	Injected429    int            `json:"sms_429_answered,omitempty"`
	Error          string         `json:"error,omitempty"`
}

// commandCount is one Redis command's calls and time per message. The
// time of a script call includes that of the commands it runs.
type commandCount struct {
	Command  string  `json:"command"`
	PerMsg   float64 `json:"per_msg"`
	USPerMsg float64 `json:"us_per_msg"`
}

// benchReport is the whole output.
type benchReport struct {
	Command    string        `json:"command"`
	GoVersion  string        `json:"go_version"`
	CPUs       int           `json:"cpus"`
	LoadBefore string        `json:"load_average_before"`
	LoadAfter  string        `json:"load_average_after"`
	Redis      string        `json:"redis"`
	Settings   string        `json:"settings"`
	Figures    []benchResult `json:"figures"`
}

func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "peer" {
		// The bench's own child; Main has no stdin of its own to pass.
		return benchPeerCommand(ctx, args[1:], os.Stdin, stdout, stderr)
	}
	var o benchOptions
	var fs *flag.FlagSet
	c, err := parseConfig("bench", args, benchEnv(getenv), stderr, func(f *flag.FlagSet) {
		fs = f
		f.IntVar(&o.contacts, "contacts", 20_000, "emails sent end to end into the local SMTP sink")
		f.IntVar(&o.gateContacts, "gate-contacts", 200_000, "contacts planned and gated (no send served)")
		f.IntVar(&o.sms, "sms", 1800, "SMS sent through the Twilio double (1,800 at 30/s: a minute)")
		f.StringVar(&o.smsRate, "sms-rate", "", "SMS pace to hold, like 30/s; empty is serve's --rate-sms")
		f.StringVar(&o.only, "only", strings.Join(benchFigures, ","), "figures to measure, comma-separated: "+strings.Join(benchFigures, ", "))
		f.BoolVar(&o.json, "json", false, "print JSON instead of a table")
		f.IntVar(&o.fail429Every, "sms-429-every", 20, "the Twilio double answers 429 once to every Nth number; 0 never")
		f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the figures to this file (go tool pprof)")
		f.StringVar(&o.memProfile, "memprofile", "", "write the allocations of the figures to this file (go tool pprof)")
	})
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	only := map[string]bool{}
	for _, f := range strings.Split(o.only, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(benchFigures, f) {
			return fmt.Errorf("--only: %q is not a figure (%s)", f, strings.Join(benchFigures, ", "))
		}
		only[f] = true
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"contacts", o.contacts}, {"gate-contacts", o.gateContacts}, {"sms", o.sms}} {
		if n.v < 1 || n.v > 10_000_000 {
			return fmt.Errorf("--%s: from 1 to 10000000", n.name)
		}
	}
	if o.fail429Every < 0 {
		return errors.New("--sms-429-every: 0 or more")
	}
	if o.smsRate != "" {
		c.RateSMS = o.smsRate
	}
	notes := []string{}
	if !set["quiet-sms"] {
		// Quiet hours would defer every SMS at night and on Sundays: the
		// figure is the pace, whatever the hour.
		c.QuietSMS = ""
		notes = append(notes, "SMS quiet hours off (--quiet-sms to set them)")
	}
	fillBenchSecrets(c)
	c.ownRedis = true // a throw-away redis-server when MISSIVE_REDIS_URL is empty
	if err := c.validate(false); err != nil {
		return err
	}

	rep := &benchReport{
		Command:    strings.Join(append([]string{"missive", "bench"}, args...), " "),
		GoVersion:  runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		CPUs:       runtime.NumCPU(),
		LoadBefore: procstat.LoadAverage(),
	}
	srv, err := benchRedis(c.RedisURL)
	if err != nil {
		return err
	}
	rep.Redis = srv.describe
	pace := func(k channels.Kind) string {
		if r, ok := c.rates[k]; ok {
			return r.String()
		}
		return "unpaced"
	}
	rep.Settings = fmt.Sprintf("serve's defaults: email %s, SMS %s, concurrency %d", pace(channels.Email), pace(channels.SMS), c.Concurrency)
	if len(notes) > 0 {
		rep.Settings += "; " + strings.Join(notes, "; ")
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.memProfile != "" {
		defer func() {
			if err := writeAllocs(o.memProfile); err != nil {
				fmt.Fprintf(stderr, "--memprofile: %v\n", err)
			}
		}()
	}
	logs := stderr
	for _, fig := range benchFigures {
		if !only[fig] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		var r benchResult
		switch fig {
		case "email":
			r = runBenchFigure(ctx, c, srv, logs, o.contacts, fig, benchPeerOptions{}, benchEmail)
		case "gate":
			r = runBenchFigure(ctx, c, srv, logs, o.gateContacts, fig, benchPeerOptions{}, benchGate)
		case "sms":
			r = runBenchFigure(ctx, c, srv, logs, o.sms, fig, benchPeerOptions{sms: o.sms, fail429Every: o.fail429Every}, benchSMS)
		}
		rep.Figures = append(rep.Figures, r)
	}
	srv.close()
	rep.LoadAfter = procstat.LoadAverage()
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printBench(stdout, rep)
	}
	failed := 0
	for _, r := range rep.Figures {
		if r.Error != "" {
			failed++
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("bench: %d figure(s) failed", failed)
	}
	return nil
}

// benchEnv hides the environment but MISSIVE_REDIS_URL from the bench's
// configuration, so that its figures are those of serve's defaults
// whatever the shell holds; flags still change any setting. Logs are kept
// to errors, so that the table stands alone.
func benchEnv(getenv func(string) string) func(string) string {
	return func(k string) string {
		switch k {
		case "MISSIVE_REDIS_URL":
			return getenv(k)
		case "MISSIVE_LOG_LEVEL":
			return "error"
		}
		return ""
	}
}

// fillBenchSecrets fills the settings serve requires with made-up values.
func fillBenchSecrets(c *config) {
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	c.Secret = hex.EncodeToString(random(32))
	c.DataKeys = "bench:" + base64.StdEncoding.EncodeToString(random(32))
	c.APIKeys = "bench:" + hex.EncodeToString(random(16))
}

// benchServer is the Redis the figures run on: the one at
// MISSIVE_REDIS_URL, or a throw-away redis-server per figure.
type benchServer struct {
	url      string // MISSIVE_REDIS_URL, or empty
	describe string
	close    func()
}

func benchRedis(url string) (*benchServer, error) {
	if url != "" {
		return &benchServer{url: url, describe: "MISSIVE_REDIS_URL, keys under a throw-away prefix wiped after each figure (a shared server's CPU and commands count other clients too)", close: func() {}}, nil
	}
	// Checked once up front, so that a missing server is said before
	// anything is seeded.
	srv, err := redistest.StartServer("")
	if err != nil {
		return nil, fmt.Errorf("the bench needs a real Redis: set MISSIVE_REDIS_URL or put redis-server on PATH (%v); the in-process Redis is not measured", err)
	}
	srv.Close()
	return &benchServer{describe: "a throw-away redis-server from PATH per figure, on 127.0.0.1, no persistence", close: func() {}}, nil
}

// benchEnvironment is one figure's Missive, Redis, and the child running
// its SMTP sink and Twilio double.
type benchEnvironment struct {
	a        *app
	peer     *benchPeer
	peerOpts benchPeerOptions
	ready    *readySignal
	n        int
}

// runBenchFigure builds a fresh environment for one figure, runs it and
// tears everything down. Errors end up in the result, not as a return: the
// other figures still run.
func runBenchFigure(ctx context.Context, base *config, srv *benchServer, logs io.Writer, n int, name string, po benchPeerOptions,
	measure func(context.Context, *benchEnvironment, *benchResult) error) benchResult {
	r := benchResult{Figure: name, N: n}
	fail := func(err error) benchResult {
		r.Error = err.Error()
		return r
	}
	url := srv.url
	if url == "" {
		rs, err := redistest.StartServer("")
		if err != nil {
			return fail(err)
		}
		defer rs.Close()
		url = rs.URL
	}
	peer, err := startBenchPeer(ctx, po, logs)
	if err != nil {
		return fail(err)
	}
	defer peer.close()

	c := *base
	c.RedisURL = url
	c.Prefix = "missive-bench-" + hex.EncodeToString(randomBytes(6))
	c.SMTPURL = peer.SMTPURL
	c.EmailFrom = "Missive bench <bench@example.com>"
	c.TwilioSID, c.TwilioToken, c.SMSFrom, c.TwilioAPIURL = twiliotest.AccountSID, twiliotest.AuthToken, "+33757000000", peer.TwilioURL
	if err := c.validate(false); err != nil {
		return fail(err)
	}
	ready := &readySignal{ch: make(chan struct{}), once: &sync.Once{}}
	a, err := newBenchApp(ctx, &c, logs, ready)
	if err != nil {
		return fail(err)
	}
	defer a.close()
	if srv.url != "" {
		defer wipeBenchPrefix(a, c.Prefix)
	}
	b := &benchEnvironment{a: a, peer: peer, peerOpts: po, ready: ready, n: n}
	if err := measure(ctx, b, &r); err != nil {
		return fail(err)
	}
	return r
}

// newBenchApp is newApp, whose logger also tells when the worker started.
func newBenchApp(ctx context.Context, c *config, logs io.Writer, ready *readySignal) (*app, error) {
	a, err := newApp(ctx, c, []byte(c.Secret), logs)
	if err != nil {
		return nil, err
	}
	// Rebuilt with a logger that watches for the worker's start; the
	// channels and Redis client are newApp's.
	ready.next = a.log.Handler()
	log := slog.New(ready)
	cfg := a.d.Config
	cfg.Logger = log
	d, err := apppkg.New(cfg)
	if err != nil {
		a.close()
		return nil, err
	}
	a.d, a.log = d, log
	return a, nil
}

// wipeBenchPrefix deletes what a figure left on a shared Redis.
func wipeBenchPrefix(a *app, prefix string) {
	ctx := context.Background()
	_ = store.WipePrefix(ctx, a.rdb, prefix)
	queues, _ := a.rdb.SMembers(ctx, "asynq:queues").Result()
	for _, q := range queues {
		if strings.HasPrefix(q, prefix+":") {
			a.rdb.SRem(ctx, "asynq:queues", q)
		}
	}
}

// readySignal is a slog handler that passes records on to next and
// closes ch when the worker logs that it started: the start of a figure
// is then the moment a serve process would take the API's start call,
// with its worker already waiting.
type readySignal struct {
	next slog.Handler
	ch   chan struct{}
	once *sync.Once // shared with the handlers WithAttrs and WithGroup derive
}

func (h *readySignal) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *readySignal) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Message == "worker started" {
		h.once.Do(func() { close(h.ch) })
	}
	if !h.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.next.Handle(ctx, rec)
}

func (h *readySignal) WithAttrs(as []slog.Attr) slog.Handler {
	return &readySignal{next: h.next.WithAttrs(as), ch: h.ch, once: h.once}
}

func (h *readySignal) WithGroup(g string) slog.Handler {
	return &readySignal{next: h.next.WithGroup(g), ch: h.ch, once: h.once}
}

// wait waits for the worker's start, at most 10 s: past that the figure
// runs anyway, counting the rest of the start in its first message.
func (h *readySignal) wait(ctx context.Context) {
	select {
	case <-h.ch:
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
}

// serveQueues runs the worker on queues, the way serve's worker role does,
// until the returned stop is called; stop returns what serving returned.
func (b *benchEnvironment) serveQueues(ctx context.Context, queues map[string]int) (stop func() error) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.a.d.Pipeline.ServeQueues(wctx, queues) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
}

// seed imports n contacts with consent on kinds through the bulk import,
// the ~2.3 KB personalised template BenchmarkDeliver sends, and the
// "bench" campaign on kinds.
func (b *benchEnvironment) seed(ctx context.Context, kinds ...channels.Kind) error {
	s := b.a.d.Store
	if err := s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}); err != nil {
		return err
	}
	html := "<p>Hello {{default \"friend\" .Attr.first_name}},</p>" + strings.Repeat("<p>Autumn news, offers and stories from the shop.</p>\n", 24)
	if err := s.PutTemplate(ctx, &templates.Template{ID: "mail", Email: &templates.Email{Subject: "News for {{default \"you\" .Attr.first_name}}", HTML: html}}); err != nil {
		return err
	}
	if err := s.PutTemplate(ctx, &templates.Template{ID: "sms", SMS: &templates.SMS{Body: "News for {{default \"you\" .Attr.first_name}}!"}}); err != nil {
		return err
	}
	const chunk = 50_000
	for start := 0; start < b.n; start += chunk {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for i := start; i < min(start+chunk, b.n); i++ {
			l := store.ImportLine{Contact: dispatcher.Contact{ID: fmt.Sprintf("b%07d", i), Email: fmt.Sprintf("b%07d@example.com", i),
				Attributes: map[string]string{"first_name": "Ana"}, Tags: []string{"customer"}}}
			if slices.Contains(kinds, channels.SMS) {
				l.Phone = benchPhone(i)
			}
			for _, k := range kinds {
				l.Consents = append(l.Consents, dispatcher.ConsentEvent{Channel: k, Topic: "newsletter", State: dispatcher.Granted, Source: "import"})
			}
			_ = enc.Encode(l)
		}
		res, err := s.ImportContacts(ctx, &buf, b.a.cfg.DefaultTZ, nil)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if res.Failed > 0 {
			return fmt.Errorf("seed: %d contacts refused: %v", res.Failed, res.Errors[0])
		}
	}
	if err := s.PutSegment(ctx, &dispatcher.Segment{ID: "customers", TagsAll: []string{"customer"}}); err != nil {
		return err
	}
	tpl := map[channels.Kind]string{channels.Email: "mail", channels.SMS: "sms"}
	camp := &dispatcher.Campaign{ID: "bench", Topic: "newsletter", Segment: "customers", Channels: kinds, Templates: map[channels.Kind]string{}}
	for _, k := range kinds {
		camp.Templates[k] = tpl[k]
	}
	return b.a.d.Pipeline.CreateCampaign(ctx, camp)
}

// benchPhone is contact i's mobile number (French, E.164).
func benchPhone(i int) string { return fmt.Sprintf("+336%08d", i) }

// meter takes the process's, the peers' and Redis's counters before a
// figure and computes the per-message figures after it.
type meter struct {
	b        *benchEnvironment
	cpu      float64
	peersCPU float64
	redisCPU float64
	cmds     map[string]commandStat
}

func (b *benchEnvironment) startMeter(ctx context.Context) (*meter, error) {
	// Forget the seeding: collect it, give the memory back, and restart
	// the high-water mark of resident memory.
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	m := &meter{b: b, cpu: procstat.CPU()}
	peers, err := b.peer.status(ctx, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	m.peersCPU = peers.cpu()
	if m.redisCPU, err = redisCPU(ctx, b.a.rdb); err != nil {
		return nil, err
	}
	if m.cmds, err = redisCommands(ctx, b.a.rdb); err != nil {
		return nil, err
	}
	return m, nil
}

// stop fills r's per-message figures for r.N messages.
func (m *meter) stop(ctx context.Context, r *benchResult) error {
	cpu := procstat.CPU()
	peers, err := m.b.peer.status(ctx, 0, 0, 0)
	if err != nil {
		return err
	}
	rcpu, err := redisCPU(ctx, m.b.a.rdb)
	if err != nil {
		return err
	}
	cmds, err := redisCommands(ctx, m.b.a.rdb)
	if err != nil {
		return err
	}
	n := float64(r.N)
	r.CPUProcessUS = (cpu - m.cpu) / n * 1e6
	r.CPUPeersUS = (peers.cpu() - m.peersCPU) / n * 1e6
	r.CPURedisUS = (rcpu - m.redisCPU) / n * 1e6
	var total int64
	for cmd, st := range cmds {
		d := st.calls - m.cmds[cmd].calls
		if d <= 0 {
			continue
		}
		total += d
		r.TopCommands = append(r.TopCommands, commandCount{Command: cmd, PerMsg: float64(d) / n, USPerMsg: float64(st.usec-m.cmds[cmd].usec) / n})
	}
	slices.SortFunc(r.TopCommands, func(x, y commandCount) int {
		if x.PerMsg != y.PerMsg {
			if x.PerMsg > y.PerMsg {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Command, y.Command)
	})
	r.RedisCmds = float64(total) / n
	r.PeakRSSMB = float64(procstat.PeakRSS()) / (1 << 20)
	mem, err := redisInfo(ctx, m.b.a.rdb, "memory")
	if err != nil {
		return err
	}
	peak, _ := strconv.ParseFloat(mem["used_memory_peak"], 64)
	r.RedisPeakMB = peak / (1 << 20)
	return nil
}

// benchEmail: r.N emails of ~2.3 KB through the whole pipeline into the
// SMTP sink, from the start call to the last message at the sink.
func benchEmail(ctx context.Context, b *benchEnvironment, r *benchResult) error {
	if err := b.seed(ctx, channels.Email); err != nil {
		return err
	}
	st, err := b.startRun(ctx, b.a.d.Pipeline.Queues())
	if err != nil {
		return err
	}
	defer st.stopWorker()
	s, err := st.delivered(ctx, b, r, r.N, 0, benchTimeout(r.N, 100))
	if err != nil {
		return err
	}
	got := s.Email
	st.timing(r, got.first(), got.last())
	r.BytesPerMsg = float64(got.Bytes) / float64(got.Messages)
	if got.Messages != r.N || got.Unique != r.N {
		return fmt.Errorf("%d messages to %d recipients at the sink, want %d once each", got.Messages, got.Unique, r.N)
	}
	return nil
}

// benchGate: r.N recipients planned and gated (decision written, send
// enqueued), with no worker on the send queue.
func benchGate(ctx context.Context, b *benchEnvironment, r *benchResult) error {
	if err := b.seed(ctx, channels.Email); err != nil {
		return err
	}
	p := b.a.d.Pipeline
	all := p.Queues()
	queues := map[string]int{p.Queue("plan"): all[p.Queue("plan")], p.Queue("batch"): all[p.Queue("batch")]}
	st, err := b.startRun(ctx, queues)
	if err != nil {
		return err
	}
	defer st.stopWorker()
	run, err := b.waitRun(ctx, st.run, benchTimeout(r.N, 1000), func(run *dispatcher.Run) bool {
		return run.Counters["planned"] >= int64(r.N)
	})
	if err != nil {
		return err
	}
	el := time.Since(st.at)
	if err := st.meter.stop(ctx, r); err != nil {
		return err
	}
	if err := st.stopWorker(); err != nil {
		return err
	}
	r.Seconds = el.Seconds()
	r.PerSecond = float64(r.N) / r.Seconds
	if q := run.Counters["queued"]; q != int64(r.N) {
		return fmt.Errorf("%d of %d sends queued after the gate: %v", q, r.N, run.Counters)
	}
	return nil
}

// benchSMS: r.N SMS through the Twilio double at the configured pace,
// every Nth number answered 429 once (the peer's options); none may be
// lost or sent twice.
func benchSMS(ctx context.Context, b *benchEnvironment, r *benchResult) error {
	if err := b.seed(ctx, channels.SMS); err != nil {
		return err
	}
	injected := b.peerOpts.injected()
	rate := b.a.cfg.rates[channels.SMS]
	st, err := b.startRun(ctx, b.a.d.Pipeline.Queues())
	if err != nil {
		return err
	}
	defer st.stopWorker()
	perSecond := float64(rate.Count) / rate.Per.Seconds()
	s, err := st.delivered(ctx, b, r, 0, r.N, benchTimeout(r.N, perSecond/2))
	if err != nil {
		return err
	}
	first, last := s.SMS.first(), s.SMS.last()
	st.timing(r, first, last)
	r.RateConfigured = perSecond
	// The limiter lets a burst go at once, then one message every
	// 1/rate: the pace is what came after the burst, over the time it
	// took.
	burst := rate.Burst
	if burst == 0 {
		burst = rate.Count
	}
	if r.N > burst && last.After(first) {
		r.RateAchieved = float64(r.N-burst) / last.Sub(first).Seconds()
		r.RateDeviation = (r.RateAchieved/perSecond - 1) * 100
	}
	r.Injected429 = s.Answered429
	if s.SMS.Messages != r.N || s.SMS.Unique != r.N {
		return fmt.Errorf("%d SMS to %d numbers at the double, want %d once each", s.SMS.Messages, s.SMS.Unique, r.N)
	}
	if s.Injected429 != injected || r.Injected429 != injected {
		return fmt.Errorf("the double answered 429 %d times, %d were injected, want %d", r.Injected429, s.Injected429, injected)
	}
	return nil
}

// benchStart is a figure's run under way.
type benchStart struct {
	stopWorker func() error
	meter      *meter
	at         time.Time // the start call
	run        string
}

// delivered waits, at most timeout, until the peers got email emails and
// sms SMS, then for the run to finish (finish), and returns what the
// peers saw.
func (st *benchStart) delivered(ctx context.Context, b *benchEnvironment, r *benchResult, email, sms int, timeout time.Duration) (benchPeerStatus, error) {
	if _, err := b.peer.await(ctx, email, sms, timeout); err != nil {
		return benchPeerStatus{}, err
	}
	if err := st.finish(ctx, b, r); err != nil {
		return benchPeerStatus{}, err
	}
	return b.peer.status(ctx, 0, 0, 0)
}

// timing sets r's time, pace and first message from the start call and
// the first and last messages at the peer.
func (st *benchStart) timing(r *benchResult, first, last time.Time) {
	r.Seconds = last.Sub(st.at).Seconds()
	r.PerSecond = float64(r.N) / r.Seconds
	r.FirstMessageMS = float64(first.Sub(st.at).Microseconds()) / 1000
}

// startRun serves queues, waits for the worker, starts the meter and
// then the "bench" campaign, as the API does: what every figure does
// before it measures. The caller defers stopWorker.
func (b *benchEnvironment) startRun(ctx context.Context, queues map[string]int) (*benchStart, error) {
	st := &benchStart{stopWorker: b.serveQueues(ctx, queues)}
	b.ready.wait(ctx)
	var err error
	if st.meter, err = b.startMeter(ctx); err != nil {
		st.stopWorker()
		return nil, err
	}
	st.at = time.Now()
	started, err := b.a.d.Pipeline.Start(ctx, "bench", pipeline.StartOptions{})
	if err != nil {
		st.stopWorker()
		return nil, err
	}
	st.run = started.Run
	return st, nil
}

// finish waits for every send to be recorded sent, then stops the meter
// and the worker.
func (st *benchStart) finish(ctx context.Context, b *benchEnvironment, r *benchResult) error {
	if err := b.waitSent(ctx, st.run, r); err != nil {
		return err
	}
	if err := st.meter.stop(ctx, r); err != nil {
		return err
	}
	return st.stopWorker()
}

// waitSent waits until the run counts r.N sent: the send records are
// written once the provider accepted, a moment after the sink saw the
// last message.
func (b *benchEnvironment) waitSent(ctx context.Context, run string, r *benchResult) error {
	got, err := b.waitRun(ctx, run, 2*time.Minute, func(run *dispatcher.Run) bool {
		return run.Counters["sent"] >= int64(r.N)
	})
	if err != nil {
		return err
	}
	if s := got.Counters["sent"]; s != int64(r.N) {
		return fmt.Errorf("the run counts %d sent, want %d: %v", s, r.N, got.Counters)
	}
	return nil
}

// waitRun polls the run every 50 ms (few Redis commands next to the
// figure's) until done holds.
func (b *benchEnvironment) waitRun(ctx context.Context, id string, timeout time.Duration, done func(*dispatcher.Run) bool) (*dispatcher.Run, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		run, err := b.a.d.Store.Run(ctx, id)
		if err != nil {
			return nil, err
		}
		if done(run) {
			return run, nil
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("run not done after %v: %v", timeout, run.Counters)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// benchTimeout is how long a figure of n messages at about perSecond may
// take before it is called failed: twice that, and two minutes more.
func benchTimeout(n int, perSecond float64) time.Duration {
	return 2*time.Minute + time.Duration(2*float64(n)/perSecond*float64(time.Second))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// redisInfo reads one section of INFO as fields.
func redisInfo(ctx context.Context, rdb store.Client, section string) (map[string]string, error) {
	info, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO %s: %w", section, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// redisCPU is the CPU seconds the Redis server used, user and system.
func redisCPU(ctx context.Context, rdb store.Client) (float64, error) {
	m, err := redisInfo(ctx, rdb, "cpu")
	if err != nil {
		return 0, err
	}
	sys, _ := strconv.ParseFloat(m["used_cpu_sys"], 64)
	user, _ := strconv.ParseFloat(m["used_cpu_user"], 64)
	return sys + user, nil
}

// commandStat is what Redis counted of one command: its calls and their
// time in µs.
type commandStat struct{ calls, usec int64 }

// redisCommands is the calls and time of each command Redis served so far.
func redisCommands(ctx context.Context, rdb store.Client) (map[string]commandStat, error) {
	m, err := redisInfo(ctx, rdb, "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]commandStat{}
	for k, v := range m {
		cmd, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		var st commandStat
		for _, f := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(f, "=")
			switch name {
			case "calls":
				st.calls, _ = strconv.ParseInt(val, 10, 64)
			case "usec":
				st.usec, _ = strconv.ParseInt(val, 10, 64)
			}
		}
		out[cmd] = st
	}
	return out, nil
}

// printBench prints the report as a table.
func printBench(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "%s\n", rep.Command)
	fmt.Fprintf(w, "%s, %d CPUs, load average %s before, %s after\n", rep.GoVersion, rep.CPUs, rep.LoadBefore, rep.LoadAfter)
	fmt.Fprintf(w, "Redis: %s\n", rep.Redis)
	fmt.Fprintf(w, "Settings: %s\n\n", rep.Settings)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tn\tmsgs/s\tfirst msg\tCPU/msg process\tCPU/msg peers\tCPU/msg Redis\tRedis cmds/msg\tpeak RSS\tRedis peak\t")
	for _, r := range rep.Figures {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\tFAILED\t\t\t\t\t\t\t\t\n", r.Figure, r.N)
			continue
		}
		first := "-"
		if r.FirstMessageMS > 0 {
			first = fmt.Sprintf("%.0f ms", r.FirstMessageMS)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.0f µs\t%.0f µs\t%.0f µs\t%.1f\t%.0f MB\t%.0f MB\t\n",
			r.Figure, r.N, formatRate(r.PerSecond), first, r.CPUProcessUS, r.CPUPeersUS, r.CPURedisUS, r.RedisCmds, r.PeakRSSMB, r.RedisPeakMB)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rep.Figures {
		if r.Error != "" {
			fmt.Fprintf(w, "%s FAILED: %s\n", r.Figure, r.Error)
			continue
		}
		var top []string
		for _, c := range r.TopCommands[:min(len(r.TopCommands), 5)] {
			top = append(top, fmt.Sprintf("%s %.2f (%.1f µs)", c.Command, c.PerMsg, c.USPerMsg))
		}
		fmt.Fprintf(w, "%s: %.1f s; Redis commands per message (their time in Redis): %s\n", r.Figure, r.Seconds, strings.Join(top, ", "))
		if r.Figure == "email" {
			fmt.Fprintf(w, "email: %.0f bytes a message at the sink; %d of %d recipients reached once\n", r.BytesPerMsg, r.N, r.N)
		}
		if r.Figure == "sms" {
			fmt.Fprintf(w, "sms: paced at %.2f/s after the burst for %.2f/s configured (%+.2f%%); %d answers 429 retried; %d of %d numbers reached once\n",
				r.RateAchieved, r.RateConfigured, r.RateDeviation, r.Injected429, r.N, r.N)
		}
	}
	fmt.Fprintln(w, "\nmsgs/s: start call to last message at the sink (email, sms) or to the last decision (gate: recipients/s).")
	fmt.Fprintln(w, "CPU/msg process is Missive's process alone; CPU/msg peers is the child process running the SMTP sink and Twilio double.")
	fmt.Fprintln(w, "Redis cmds/msg counts every command Redis ran (INFO commandstats), those run inside Lua scripts too.")
}

func formatRate(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// writeAllocs writes the allocations made since the start to name.
func writeAllocs(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
