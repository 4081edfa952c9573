// Package testkit holds what the tests of several Missive packages share:
// a log sink that a running system writes while the test reads it, and
// the one way tests wait, on a condition with a deadline, never for a
// fixed time.
package testkit

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer is an io.Writer safe for concurrent writes and reads: a
// logger or a process writes it while the test reads String.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// WaitFor looks at its condition again after firstPoll, then at
// intervals that double up to maxPoll: a state that comes soon is seen
// soon, and a condition that costs a scrape or a round trip is not asked
// without pause through a long wait.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// WaitFor waits until cond holds, and fails t if it does not within
// timeout; what names the awaited state in the failure.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := firstPoll
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		<-timer.C
		pause = min(2*pause, maxPoll)
		timer.Reset(pause)
	}
}

// Must fails t at once if err is not nil.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
