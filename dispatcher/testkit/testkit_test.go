package testkit_test

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher/testkit"
)

// Loggers on several goroutines write the buffer while the test reads it;
// every line arrives whole (run with -race).
func TestLogBufferConcurrentWrites(t *testing.T) {
	var logs testkit.LogBuffer
	log := slog.New(slog.NewTextHandler(io.Writer(&logs), nil))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				log.Info("line", "g", g, "i", i)
				_ = logs.String()
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("got %d lines, want 400", len(lines))
	}
	for _, l := range lines {
		if !strings.Contains(l, "msg=line g=") {
			t.Fatalf("torn line %q", l)
		}
	}
}

// WaitFor returns once the condition holds, having asked it again after
// it first failed.
func TestWaitForReturnsWhenConditionHolds(t *testing.T) {
	var calls atomic.Int64
	testkit.WaitFor(t, "the third call", time.Minute, func() bool { return calls.Add(1) >= 3 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("condition asked %d times, want 3", n)
	}
}

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// WaitFor fails the test, naming what it waited for, when the condition
// never holds.
func TestWaitForFailsAtDeadline(t *testing.T) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testkit.WaitFor(r, "a state that never comes", time.Millisecond, func() bool { return false })
	}()
	<-done
	if want := "waited 1ms for a state that never comes"; r.msg != want {
		t.Fatalf("failure %q, want %q", r.msg, want)
	}
}
