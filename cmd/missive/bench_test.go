package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/missive-dev/missive/throttle/redistest"
)

// The bench is run with tiny sizes: the test proves that every figure
// runs to its end and is reported, never how fast.

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
		"figure", "msgs/s", "first msg", "CPU/msg process", "CPU/msg Redis", "Redis cmds/msg", "peak RSS", "Redis peak",
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
