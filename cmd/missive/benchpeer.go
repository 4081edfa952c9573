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
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher/metrics/procstat"
)

// The bench's SMTP sink and Twilio double run in a child process, this
// binary run as "missive bench peer" (not in the usage: only the bench
// starts it). Parsing 20,000 messages costs the sink about as much CPU as
// sending them costs Missive: in the bench's process, it would be counted
// as Missive's. The child prints its addresses as one JSON line, answers
// what arrived on a loopback status endpoint, and exits when its stdin
// closes, which the kernel does when the bench dies, even of SIGKILL.

// benchPeerOptions configure one figure's peers.
type benchPeerOptions struct {
	// sms is how many numbers, benchPhone(0) on, the figure sends to;
	// fail429Every makes the double answer every fail429Every-th of them
	// 429 once (0: never).
	sms, fail429Every int
}

func (o benchPeerOptions) args() []string {
	return []string{"-sms", strconv.Itoa(o.sms), "-sms-429-every", strconv.Itoa(o.fail429Every)}
}

// injected is how many answers 429 the options inject.
func (o benchPeerOptions) injected() int {
	if o.fail429Every <= 0 {
		return 0
	}
	return o.sms / o.fail429Every
}

// benchPeerAddrs is the line the child prints once it listens.
type benchPeerAddrs struct {
	SMTPURL   string `json:"smtp_url"`
	TwilioURL string `json:"twilio_url"`
	StatusURL string `json:"status_url"`
}

// benchArrivals is what arrived at one peer. Times are Unix nanoseconds,
// taken by the peer when it accepted the message: the bench and its child
// share the machine's clock.
type benchArrivals struct {
	Messages int   `json:"messages"`
	Unique   int   `json:"unique_recipients"`
	Bytes    int64 `json:"bytes,omitempty"`
	FirstNS  int64 `json:"first_unix_ns,omitempty"`
	LastNS   int64 `json:"last_unix_ns,omitempty"`
}

func (a benchArrivals) first() time.Time { return time.Unix(0, a.FirstNS) }
func (a benchArrivals) last() time.Time  { return time.Unix(0, a.LastNS) }

// benchPeerStatus is the child's answer on its status endpoint.
type benchPeerStatus struct {
	Email       benchArrivals `json:"email"`
	SMS         benchArrivals `json:"sms"`
	Injected429 int           `json:"sms_429_injected"`
	Answered429 int           `json:"sms_429_answered"`
	// CPUNS is the CPU time the child used so far, user and system.
	CPUNS int64 `json:"cpu_ns"`
}

// benchPeerCommand is "missive bench peer": the SMTP sink and the Twilio
// double until stdin closes or ctx ends.
func benchPeerCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o benchPeerOptions
	fs := flag.NewFlagSet("bench peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.sms, "sms", 0, "numbers benchPhone(0) on that the figure sends to")
	fs.IntVar(&o.fail429Every, "sms-429-every", 0, "answer 429 once to every Nth of them; 0 never")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if o.sms < 0 || o.fail429Every < 0 {
		return errors.New("bench peer: -sms and -sms-429-every: 0 or more")
	}
	sink, err := smtptest.Start(smtptest.WithoutData())
	if err != nil {
		return fmt.Errorf("bench peer: SMTP sink: %w", err)
	}
	defer sink.Close()
	double, err := twiliotest.Start()
	if err != nil {
		return fmt.Errorf("bench peer: Twilio double: %w", err)
	}
	defer double.Close()
	if o.fail429Every > 0 {
		for i := o.fail429Every - 1; i < o.sms; i += o.fail429Every {
			double.FailOnce(benchPhone(i), 429, 20429)
		}
	}
	p := &benchPeers{sink: sink, double: double, injected: o.injected()}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench peer: status: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", p.serveStatus)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	addrs := benchPeerAddrs{SMTPURL: sink.URL(), TwilioURL: double.URL(), StatusURL: "http://" + ln.Addr().String() + "/status"}
	if err := json.NewEncoder(stdout).Encode(addrs); err != nil {
		return fmt.Errorf("bench peer: %w", err)
	}
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(stdinClosed)
	}()
	select {
	case <-stdinClosed:
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("bench peer: status: %w", err)
	}
	return nil
}

// benchPeers are the servers the child runs.
type benchPeers struct {
	sink     *smtptest.Server
	double   *twiliotest.Server
	injected int
}

// serveStatus answers what arrived so far. With email=N or sms=N it first
// waits until N messages arrived at that peer, at most wait (default 0,
// at most a minute): the bench long-polls instead of asking every few
// milliseconds, which would cost its own process CPU.
func (p *benchPeers) serveStatus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	email, err1 := atoiOr(q.Get("email"), 0)
	sms, err2 := atoiOr(q.Get("sms"), 0)
	wait, err3 := time.ParseDuration(cmp.Or(q.Get("wait"), "0s"))
	if err := errors.Join(err1, err2, err3); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), min(wait, time.Minute))
	defer cancel()
	if email > 0 {
		_, _ = p.sink.Await(ctx, email, time.Minute)
	}
	if sms > 0 {
		_, _ = p.double.Await(ctx, sms, time.Minute)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p.status())
}

func (p *benchPeers) status() benchPeerStatus {
	s := benchPeerStatus{Injected429: p.injected, Answered429: p.double.Failed(), CPUNS: int64(procstat.CPU() * 1e9)}
	seen := map[string]bool{}
	for _, m := range p.sink.Messages() {
		s.Email.add(m.At)
		s.Email.Bytes += int64(m.Size)
		for _, to := range m.To {
			seen[to] = true
		}
	}
	s.Email.Unique = len(seen)
	clear(seen)
	for _, m := range p.double.Messages() {
		seen[m.To] = true
	}
	for _, at := range p.double.Arrivals() {
		s.SMS.add(at)
	}
	s.SMS.Unique = len(seen)
	return s
}

// add counts a message that arrived at t.
func (a *benchArrivals) add(t time.Time) {
	ns := t.UnixNano()
	if a.Messages == 0 || ns < a.FirstNS {
		a.FirstNS = ns
	}
	if a.Messages == 0 || ns > a.LastNS {
		a.LastNS = ns
	}
	a.Messages++
}

func atoiOr(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

// benchPeer is the bench's side of the child.
type benchPeer struct {
	benchPeerAddrs
	cmd    *exec.Cmd
	stdin  io.Closer
	exited chan struct{} // closed when the child exited
	err    error         // what Wait returned, once exited is closed
	once   sync.Once
}

// startBenchPeer starts the child and waits until it printed its
// addresses. Its stderr goes to stderr. The caller closes it.
func startBenchPeer(ctx context.Context, o benchPeerOptions, stderr io.Writer) (*benchPeer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench peers: %w", err)
	}
	cmd := exec.Command(exe, append([]string{"bench", "peer"}, o.args()...)...)
	cmd.Stderr = stderr
	line := &firstLine{got: make(chan []byte, 1)}
	cmd.Stdout = line
	// The child exits when stdin closes; past that, Wait stops waiting
	// for its pipes.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("bench peers: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench peers: start %s: %w", exe, err)
	}
	p := &benchPeer{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	fail := func(err error) (*benchPeer, error) {
		p.close()
		return nil, fmt.Errorf("bench peers: %w", err)
	}
	select {
	case b := <-line.got:
		if err := json.Unmarshal(b, &p.benchPeerAddrs); err != nil || p.StatusURL == "" {
			return fail(fmt.Errorf("the child printed %q, want its addresses as JSON", b))
		}
	case <-p.exited:
		return fail(fmt.Errorf("the child exited before it listened: %v", p.err))
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(30 * time.Second):
		return fail(errors.New("the child printed no addresses within 30 s"))
	}
	return p, nil
}

// status asks the child what arrived, after waiting until email messages
// reached the sink and sms the double, or wait passed.
func (p *benchPeer) status(ctx context.Context, email, sms int, wait time.Duration) (benchPeerStatus, error) {
	var s benchPeerStatus
	ctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	q := url.Values{"email": {strconv.Itoa(email)}, "sms": {strconv.Itoa(sms)}, "wait": {wait.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.StatusURL+"?"+q.Encode(), nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("bench peers: status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return s, fmt.Errorf("bench peers: status: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("bench peers: status: %w", err)
	}
	return s, nil
}

// await waits until email messages reached the sink and sms the double,
// at most timeout, and returns what arrived.
func (p *benchPeer) await(ctx context.Context, email, sms int, timeout time.Duration) (benchPeerStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := p.status(ctx, email, sms, min(max(time.Until(deadline), 0), 30*time.Second))
		if err != nil {
			return s, err
		}
		if s.Email.Messages >= email && s.SMS.Messages >= sms {
			return s, nil
		}
		if err := ctx.Err(); err != nil {
			return s, err
		}
		if time.Now().After(deadline) {
			if email > 0 {
				return s, fmt.Errorf("got %d messages at the sink after %v, want %d", s.Email.Messages, timeout, email)
			}
			return s, fmt.Errorf("got %d messages at the Twilio double after %v, want %d", s.SMS.Messages, timeout, sms)
		}
	}
}

// close closes the child's stdin and waits until it exited, killing it
// after 10 s. It may be called more than once.
func (p *benchPeer) close() {
	p.once.Do(func() {
		_ = p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// cpu is the CPU seconds the child used, user and system.
func (s benchPeerStatus) cpu() float64 { return float64(s.CPUNS) / 1e9 }

// firstLine keeps the first line written to it and discards the rest.
type firstLine struct {
	mu   sync.Mutex
	buf  []byte
	done bool
	got  chan []byte
}

func (l *firstLine) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return len(b), nil
	}
	l.buf = append(l.buf, b...)
	if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
		l.done = true
		l.got <- l.buf[:i]
	}
	return len(b), nil
}
