package email

import (
	"sync"
	"time"
)

// dialGate spaces the dials of one connection pool while the relay refuses
// them (421 at connect, connection refused): after a failed dial the pool
// waits, exponentially longer up to a cap, and then lets one dial probe the
// relay while the others fail fast; a dial that succeeds resets it. The
// relay sees a few attempts during an outage, not one per message.
type dialGate struct {
	base, max time.Duration
	now       func() time.Time

	mu       sync.Mutex
	failures int       // failed rounds since the last good dial
	next     time.Time // no dial before then
	probing  bool      // a dial is under way after a failure
}

// acquire asks to dial: ok, or how long until the pool dials again.
// Each ok must be followed by succeeded, failed or released.
func (g *dialGate) acquire() (ok bool, retryIn time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failures == 0 {
		return true, 0
	}
	now := g.now()
	if g.probing || now.Before(g.next) {
		return false, max(g.next.Sub(now), g.base)
	}
	g.probing = true
	return true, 0
}

// succeeded ends the backoff.
func (g *dialGate) succeeded() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures, g.probing = 0, false
}

// failed records a failed dial and returns how long until the next one.
// Dials that fail together, before the pool had started waiting, count as
// one round.
func (g *dialGate) failed() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if g.failures == 0 || g.probing || !now.Before(g.next) {
		g.failures++
		g.next = now.Add(backoff(g.base, g.max, g.failures))
	}
	g.probing = false
	return g.next.Sub(now)
}

// released gives a dial back without a verdict (its context ended).
func (g *dialGate) released() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.probing = false
}

// backoff is the wait after the n-th failed round (n >= 1): base, 2*base,
// 4*base... capped at max.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
