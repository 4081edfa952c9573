package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/throttle/redistest"
)

// The bench is run with tiny sizes: the test proves that every figure
// runs to its end and is reported, never how fast.

// The bench runs its peers as os.Executable with "bench peer": under go
// test, this test binary, which must then be the peer and not run the
// tests. With benchPeerParentEnv set, it is a bench that starts its peer,
// prints the peer's addresses and waits to be killed.
func init() {
	if len(os.Args) > 2 && os.Args[1] == "bench" && os.Args[2] == "peer" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	if os.Getenv(benchPeerParentEnv) == "1" {
		p, err := startBenchPeer(context.Background(), benchPeerOptions{}, os.Stderr)
		if err != nil {
			panic(err)
		}
		_ = json.NewEncoder(os.Stdout).Encode(p.benchPeerAddrs)
		select {}
	}
}

const benchPeerParentEnv = "MISSIVE_TEST_BENCH_PEER_PARENT"

func runBench(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = Main(context.Background(), append([]string{"bench"}, args...), func(k string) string { return env[k] }, &out, &errs)
	return code, out.String(), errs.String()
}

func needRedisServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("no redis-server on PATH")
	}
}

func TestBenchPrintsEveryFigure(t *testing.T) {
	needRedisServer(t)
	code, out, errs := runBench(t, nil, "-contacts", "200", "-gate-contacts", "200", "-sms", "50")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{
		"missive bench -contacts 200 -gate-contacts 200 -sms 50",
		"CPUs, load average",
		"throw-away redis-server",
		"figure", "msgs/s", "first msg", "CPU/msg process", "CPU/msg peers", "CPU/msg Redis", "Redis cmds/msg", "peak RSS", "Redis peak",
		"50 of 50 numbers reached once", "200 of 200 recipients reached once",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	for _, fig := range []string{"email", "gate", "sms"} {
		row := regexp.MustCompile(`(?m)^\s*` + fig + `\s+\d+\s+[0-9.]+\s`)
		if !row.MatchString(out) {
			t.Errorf("no %s row with figures:\n%s", fig, out)
		}
	}
	if strings.Contains(out, "FAILED") {
		t.Errorf("a figure failed:\n%s\n%s", out, errs)
	}
}

func TestBenchJSONOnASharedRedisLeavesNothing(t *testing.T) {
	r := redistest.New(t)
	if redistest.Kind() == "in-process" {
		t.Skip("the in-process Redis has no INFO commandstats: the bench refuses it")
	}
	env := map[string]string{"MISSIVE_REDIS_URL": r.URL}
	code, out, errs := runBench(t, env, "-only", "gate,sms", "-gate-contacts", "120", "-sms", "40", "-sms-rate", "100/s", "-json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(rep.Figures) != 2 || rep.Figures[0].Figure != "gate" || rep.Figures[1].Figure != "sms" {
		t.Fatalf("figures %+v, want gate then sms", rep.Figures)
	}
	for _, f := range rep.Figures {
		if f.Error != "" || f.PerSecond <= 0 || f.RedisCmds <= 0 || len(f.TopCommands) == 0 {
			t.Errorf("figure %+v: want no error and every figure measured", f)
		}
	}
	if sms := rep.Figures[1]; sms.N != 40 || sms.RateConfigured != 100 || sms.Injected429 != 2 {
		t.Errorf("sms: n %d at %v/s with %d answers 429, want 40 at 100/s with 2", sms.N, sms.RateConfigured, sms.Injected429)
	}
	if sms := rep.Figures[1]; sms.CPUPeersUS <= 0 || sms.CPUProcessUS <= 0 {
		t.Errorf("sms: CPU per message %v µs in the process, %v µs in the peers: want both counted", sms.CPUProcessUS, sms.CPUPeersUS)
	}
	if !strings.Contains(rep.Redis, "MISSIVE_REDIS_URL") {
		t.Errorf("Redis %q does not say it used MISSIVE_REDIS_URL", rep.Redis)
	}
	ctx := context.Background()
	for _, pattern := range []string{"missive-bench-*", "asynq:{missive-bench-*"} {
		keys, err := r.Client.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			t.Errorf("the bench left %d keys like %s, %q first", len(keys), pattern, keys[0])
		}
	}
}

func TestBenchRefusesAnUnknownFigure(t *testing.T) {
	code, _, errs := runBench(t, nil, "-only", "email,fax")
	if code != 1 || !strings.Contains(errs, `"fax" is not a figure`) {
		t.Errorf("exit %d, stderr %q: want 1 and the figure named", code, errs)
	}
}

func TestBenchNeedsARealRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	code, out, errs := runBench(t, nil, "-contacts", "10")
	if code != 1 || !strings.Contains(errs, "set MISSIVE_REDIS_URL or put redis-server on PATH") || out != "" {
		t.Errorf("exit %d, stdout %q, stderr %q: want 1 and what to install", code, out, errs)
	}
}

// TestBenchPeer runs the bench's child as the bench does: it prints its
// addresses, answers what arrived at the SMTP sink and the Twilio double
// (with the 429s it was told to inject), and exits once its stdin closes.
func TestBenchPeer(t *testing.T) {
	ctx := context.Background()
	var stderr bytes.Buffer
	p, err := startBenchPeer(ctx, benchPeerOptions{sms: 4, fail429Every: 2}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	s, err := p.status(ctx, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Email.Messages != 0 || s.SMS.Messages != 0 || s.Injected429 != 2 || s.CPUNS <= 0 {
		t.Fatalf("status before any message: %+v; want nothing arrived, 2 answers 429 to inject, some CPU", s)
	}

	before := time.Now()
	sink, err := url.Parse(p.SMTPURL)
	if err != nil {
		t.Fatal(err)
	}
	mails := []struct {
		to  []string
		msg string
	}{
		{[]string{"a@example.com", "b@example.com"}, "Subject: one\r\n\r\nHello.\r\n"},
		{[]string{"c@example.com"}, "Subject: two\r\n\r\nHello again.\r\n"},
	}
	size := 0
	for _, m := range mails {
		if err := smtp.SendMail(sink.Host, nil, "bench@example.com", m.to, []byte(m.msg)); err != nil {
			t.Fatal(err)
		}
		size += len(m.msg)
	}
	// The second number is answered 429 once, the first never.
	for i, sms := range []struct{ to, status int }{{0, http.StatusCreated}, {1, http.StatusTooManyRequests}, {1, http.StatusCreated}} {
		if got := postSMS(t, p.TwilioURL, benchPhone(sms.to)); got != sms.status {
			t.Errorf("SMS %d: status %d, want %d", i, got, sms.status)
		}
	}
	s, err = p.await(ctx, 2, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if s.Email.Messages != 2 || s.Email.Unique != 3 || s.Email.Bytes != int64(size) {
		t.Errorf("email %+v: want 2 messages, 3 recipients, %d bytes", s.Email, size)
	}
	if s.SMS.Messages != 2 || s.SMS.Unique != 2 || s.Answered429 != 1 {
		t.Errorf("sms %+v with %d answers 429: want 2 messages to 2 numbers, 1 answer 429", s.SMS, s.Answered429)
	}
	for _, a := range []benchArrivals{s.Email, s.SMS} {
		if a.first().Before(before) || a.last().After(after) || a.last().Before(a.first()) {
			t.Errorf("arrivals %s to %s, want within %s to %s", a.first(), a.last(), before, after)
		}
	}

	if err := p.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("the child exited with %v\n%s", p.err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child still runs 10 s after its stdin closed")
	}
}

// postSMS sends an SMS to the Twilio double at base and returns the
// status it answered.
func postSMS(t *testing.T, base, to string) int {
	t.Helper()
	form := url.Values{"To": {to}, "From": {"+33757000000"}, "Body": {"Hello"}}
	req, err := http.NewRequest(http.MethodPost, base+"/2010-04-01/Accounts/"+twiliotest.AccountSID+"/Messages.json", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(twiliotest.AccountSID, twiliotest.AuthToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestBenchPeerEndsWithAKilledBench: a bench killed with SIGKILL cannot
// stop its peer; the kernel closes the peer's stdin, and the peer exits.
func TestBenchPeerEndsWithAKilledBench(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bench := exec.Command(exe, "-test.run=^$")
	bench.Env = append(os.Environ(), benchPeerParentEnv+"=1")
	bench.Stderr = os.Stderr
	out, err := bench.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bench.Process.Kill(); _ = bench.Wait() })
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("the bench printed no peer addresses: %v", err)
	}
	var addrs benchPeerAddrs
	if err := json.Unmarshal(line, &addrs); err != nil || addrs.StatusURL == "" {
		t.Fatalf("the bench printed %q: %v", line, err)
	}
	resp, err := http.Get(addrs.StatusURL)
	if err != nil {
		t.Fatalf("the peer does not answer: %v", err)
	}
	_ = resp.Body.Close()
	if err := bench.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The peer's listener closes with it, whoever reaps it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(addrs.StatusURL)
		if err != nil {
			break
		}
		_ = resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the peer still answers 10 s after the bench was killed")
		}
	}
}
