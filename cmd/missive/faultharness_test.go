package main

// The fault harness: real processes for what a fault test breaks. The
// missive binary is built once and run as separate "missive worker"
// processes, each scenario starts its own redis-server (and replica and
// Sentinel when it needs them) from PATH, and the peers are the real SMTP
// sink and the Twilio double in the test process. A scenario seeds a
// campaign through an in-process Dispatcher on the same Redis and prefix,
// starts it, breaks something at a condition (so many messages arrived),
// waits for the run to finish, and checks that no message reached a peer
// twice, that every planned send has a terminal outcome and that the run
// adds up.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/testkit"
	"github.com/missive-dev/missive/templates"
)

const (
	faultSecret   = "fault-secret-fault-secret-fault-secret"
	faultDataKeys = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	// runDeadline bounds a scenario's wait for its run: past the send
	// lease (2 min), the reconciler's period and asynq's task lease.
	runDeadline = 5 * time.Minute
)

// requireFaults skips t unless MISSIVE_FAULT_TESTS=1.
func requireFaults(t *testing.T) {
	t.Helper()
	if os.Getenv("MISSIVE_FAULT_TESTS") != "1" {
		t.Skip("fault tests run redis-server and missive processes for minutes: set MISSIVE_FAULT_TESTS=1 (CI does)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("fault tests need redis-server in PATH")
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// missiveBinary builds the missive command once per test binary.
func missiveBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "missive-fault-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "missive")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePort returns a port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a child process: a redis-server or a missive worker.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  []string
	log  string // its output, for the failure report

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, name, bin string, args, env []string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: append([]string{bin}, args...), env: env,
		log: filepath.Join(t.TempDir(), name+".log")}
	p.start()
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT)
		p.signal(syscall.SIGKILL)
		p.wait()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s output (tail):\n%s", p.name, b)
		}
	})
	return p
}

// start (re)starts the process with its arguments.
func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("%s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// wait waits until the process exited.
func (p *proc) wait() {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	p.wait()
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// redisServer is a redis-server process on its own port and directory.
type redisServer struct {
	*proc
	port int
	dir  string
}

// startRedis starts a redis-server with the given settings (appended to
// a base of: loopback, own dir, no RDB snapshots) and waits until it
// answers.
func startRedis(t *testing.T, name string, settings ...string) *redisServer {
	t.Helper()
	port, dir := freePort(t), t.TempDir()
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--protected-mode", "no", "--daemonize", "no"}, settings...)
	r := &redisServer{proc: startProc(t, name, "redis-server", args, os.Environ()), port: port, dir: dir}
	r.waitReady()
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// client is a plain client of this server, closed with the test.
func (r *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// waitReady waits until the server answers PING (after loading its AOF).
func (r *redisServer) waitReady() {
	r.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	waitFor(r.t, r.name+" answers PING", 30*time.Second, func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// crash kills the server with SIGKILL and starts it again on the same
// port and directory, from its append-only file.
func (r *redisServer) crash() {
	r.t.Helper()
	r.kill()
	r.start()
	r.waitReady()
}

// faultWorld skips t unless fault tests are on and runs it in parallel
// with the other scenarios, on a redis-server of its own started with
// settings: it returns the world of newWorld on that server, and the
// server.
func faultWorld(t *testing.T, settings []string, smtpOpts ...smtptest.Option) (*world, *redisServer) {
	t.Helper()
	requireFaults(t)
	t.Parallel()
	r := startRedis(t, "redis", settings...)
	return newWorld(t, "redis://"+r.addr(), smtpOpts...), r
}

// waitFor polls cond until it holds, failing t after timeout.
var waitFor = testkit.WaitFor

// world is one scenario's system: its Redis, peers, workers and campaign.
type world struct {
	t        *testing.T
	redisURL string
	prefix   string
	smtp     *smtptest.Server
	twilio   *twiliotest.Server
	d        *apppkg.Dispatcher
	env      map[string]string
	workers  []*proc
	contacts []string
	channel  channels.Kind
	run      string
}

// newWorld connects to the Redis at redisURL and prepares the peers.
func newWorld(t *testing.T, redisURL string, smtpOpts ...smtptest.Option) *world {
	t.Helper()
	w := &world{t: t, redisURL: redisURL, prefix: "fault", smtp: smtptest.New(t, smtpOpts...), twilio: twiliotest.NewServer(t)}
	rdb, err := store.Dial(context.Background(), redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	keys, err := parseDataKeys(faultDataKeys)
	if err != nil {
		t.Fatal(err)
	}
	w.d, err = apppkg.New(apppkg.Config{Redis: rdb, Prefix: w.prefix, Secret: []byte(faultSecret), DataKeys: keys,
		Channels: map[channels.Kind]channels.Channel{channels.Email: nopChannel, channels.SMS: nopChannel},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w.env = map[string]string{
		"MISSIVE_REDIS_URL":      redisURL,
		"MISSIVE_PREFIX":         w.prefix,
		"MISSIVE_HTTP_ADDR":      "127.0.0.1:0",
		"MISSIVE_OPS_ADDR":       "127.0.0.1:0",
		"MISSIVE_PUBLIC_URL":     "https://missive.example",
		"MISSIVE_SECRET":         faultSecret,
		"MISSIVE_DATA_KEYS":      faultDataKeys,
		"MISSIVE_API_KEYS":       "fault:fault-api-key-0123456789",
		"MISSIVE_SMTP_URL":       w.smtp.URL(),
		"MISSIVE_EMAIL_FROM":     "Shop <orders@shop.example>",
		"TWILIO_ACCOUNT_SID":     twiliotest.AccountSID,
		"TWILIO_AUTH_TOKEN":      twiliotest.AuthToken,
		"MISSIVE_SMS_FROM":       "+33757000000",
		"MISSIVE_TWILIO_API_URL": w.twilio.URL(),
		"MISSIVE_QUIET_SMS":      "daily 00:00-24:00",
		"MISSIVE_LOG_LEVEL":      "info",
	}
	return w
}

// nopChannel stands for the channels in the seeding process, which never
// sends.
var nopChannel = channels.SendFunc(func(context.Context, channels.Message) (channels.Result, error) {
	return channels.Result{}, errors.New("the seeding process does not send")
})

// startWorker runs one "missive worker" process.
func (w *world) startWorker(name string) *proc {
	w.t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.t.TempDir()}
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	p := startProc(w.t, name, missiveBinary(w.t), []string{"worker"}, env)
	w.workers = append(w.workers, p)
	return p
}

// seed stores n contacts, a transactional topic, a template and a
// campaign on channel k, reaching every contact once.
func (w *world) seed(n int, k channels.Kind) {
	w.t.Helper()
	ctx := context.Background()
	w.channel = k
	var lines strings.Builder
	for i := range n {
		id := fmt.Sprintf("c%05d", i)
		w.contacts = append(w.contacts, id)
		fmt.Fprintf(&lines, `{"id":%q,"email":"%s@example.test","phone":"+336%08d","tags":["all"],"attributes":{"name":"N%d"}}`+"\n", id, id, 10000000+i, i)
	}
	res, err := w.d.Store.ImportContacts(ctx, strings.NewReader(lines.String()), "Europe/Paris", nil)
	if err != nil {
		w.t.Fatal(err)
	}
	if res.Imported != n {
		w.t.Fatalf("imported %+v, want %d contacts", res, n)
	}
	must(w.t, w.d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "orders", Name: "Orders", Kind: dispatcher.Transactional}))
	must(w.t, w.d.Store.PutTemplate(ctx, &templates.Template{ID: "note",
		Email: &templates.Email{Subject: "Your order", Text: "Hello {{.Attr.name}}, your order left."},
		SMS:   &templates.SMS{Body: "Hello {{.Attr.name}}, your order left."}}))
	must(w.t, w.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all", TagsAll: []string{"all"}}))
	must(w.t, w.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "notice", Topic: "orders", Segment: "all",
		Channels: []channels.Kind{k}, Templates: map[channels.Kind]string{k: "note"}}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start starts the campaign's run.
func (w *world) start() {
	w.t.Helper()
	st, err := w.d.Pipeline.Start(context.Background(), "notice", pipeline.StartOptions{})
	must(w.t, err)
	w.run = st.Run
}

// breakAt starts the campaign's run, calls fault once n messages arrived
// and waits for the run to finish (see finish): the time to recover runs
// from the end of fault.
func (w *world) breakAt(n int, fault func()) outcome {
	w.t.Helper()
	w.start()
	w.waitArrived(n)
	fault()
	return w.finish(time.Now())
}

// arrived counts the messages the peer of the world's channel accepted.
func (w *world) arrived() int {
	if w.channel == channels.SMS {
		return len(w.twilio.Messages())
	}
	return len(w.smtp.Messages())
}

// waitArrived waits until n messages arrived at the peer.
func (w *world) waitArrived(n int) {
	w.t.Helper()
	waitFor(w.t, fmt.Sprintf("%d messages arrived", n), runDeadline, func() bool { return w.arrived() >= n })
}

// runState reads the run, or nil while Redis does not answer.
func (w *world) runState() *dispatcher.Run {
	r, err := w.d.Store.Run(context.Background(), w.run)
	if err != nil {
		return nil
	}
	return r
}

// outcome is what a scenario measured.
type outcome struct {
	Planned, Arrived, Duplicates, Lost int
	// Ambiguous: sends settled failed/ambiguous; AmbiguousArrived: those
	// whose message did arrive.
	Ambiguous, AmbiguousArrived int
	Counters                    map[string]int64
	Recovered                   time.Duration
}

// finish waits for the run to complete and checks the invariants: no
// message twice at the peer, every planned send terminal, the run
// balanced. faultAt is when the fault was injected: the time to recover
// runs from it to the run's completion.
func (w *world) finish(faultAt time.Time) outcome {
	w.t.Helper()
	var r *dispatcher.Run
	waitFor(w.t, "the run completed", runDeadline, func() bool {
		r = w.runState()
		return r != nil && r.State == dispatcher.RunCompleted
	})
	o := outcome{Planned: int(r.Counters["planned"]), Counters: r.Counters, Recovered: time.Since(faultAt)}

	seen := map[string]int{}
	if w.channel == channels.SMS {
		for _, m := range w.twilio.Messages() {
			seen[m.To]++
		}
	} else {
		for _, m := range w.smtp.Messages() {
			for _, to := range m.To {
				seen[strings.ToLower(to)]++
			}
		}
	}
	for _, n := range seen {
		o.Arrived++
		if n > 1 {
			o.Duplicates += n - 1
		}
	}
	ids := make([]string, len(w.contacts))
	for i, c := range w.contacts {
		ids[i] = dispatcher.SendID(w.run, c, w.channel)
	}
	sends, err := w.d.Store.Sends(context.Background(), ids)
	must(w.t, err)
	for i, s := range sends {
		addr := w.contacts[i] + "@example.test"
		if w.channel == channels.SMS {
			addr = fmt.Sprintf("+336%08d", 10000000+i)
		}
		switch {
		case s == nil:
			o.Lost++
			w.t.Errorf("send of %s: no record", w.contacts[i])
		case s.State == dispatcher.StateSent || s.State == dispatcher.StateDelivered:
			if seen[addr] == 0 {
				o.Lost++
				w.t.Errorf("send of %s is %s but its message never arrived", w.contacts[i], s.State)
			}
		case s.State == dispatcher.StateFailed && s.Reason == dispatcher.ReasonAmbiguous:
			o.Ambiguous++
			if seen[addr] > 0 {
				o.AmbiguousArrived++
			}
		case s.State == dispatcher.StateQueued || s.State == dispatcher.StateDeferred || s.State == dispatcher.StateSending:
			o.Lost++
			w.t.Errorf("send of %s still %s after its run completed", w.contacts[i], s.State)
		}
	}
	w.t.Logf("outcome: planned %d, arrived %d, duplicates %d, lost %d, ambiguous %d (of which arrived %d), recovered in %v; counters %v",
		o.Planned, o.Arrived, o.Duplicates, o.Lost, o.Ambiguous, o.AmbiguousArrived, o.Recovered.Round(100*time.Millisecond), o.Counters)
	if o.Planned != len(w.contacts) {
		w.t.Errorf("planned %d, want %d", o.Planned, len(w.contacts))
	}
	if !r.Balanced {
		w.t.Errorf("run not balanced: %v", r.Counters)
	}
	for _, st := range []string{"queued", "deferred", "sending"} {
		if r.Counters[st] != 0 {
			w.t.Errorf("run completed with %d sends %s", r.Counters[st], st)
		}
	}
	return o
}

// assertNoDuplicates fails t when a message arrived twice.
func (o outcome) assertNoDuplicates(t *testing.T) {
	t.Helper()
	if o.Duplicates > 0 {
		t.Errorf("%d messages arrived twice", o.Duplicates)
	}
}

// smtpConns is the SMTP connections of a worker: serve's default
// MISSIVE_SMTP_CONNS.
const smtpConns = 8

// assertUnsentPerConnection checks that after what, at most a chunk of 8
// sends per SMTP connection of the worker's pool was claimed and never
// sent: the ones being handed over at that instant.
func (o outcome) assertUnsentPerConnection(t *testing.T, what string) {
	t.Helper()
	if unsent := o.Ambiguous - o.AmbiguousArrived; unsent > smtpConns*8 {
		t.Errorf("%d sends claimed but never sent after %s, want at most %d (a chunk of 8 per SMTP connection)", unsent, what, smtpConns*8)
	}
}

// logLines returns the lines of a process's output that contain s.
func logLines(p *proc, s string) []string {
	f, err := os.Open(p.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

func writeFile(name, body string) error { return os.WriteFile(name, []byte(body), 0o600) }
