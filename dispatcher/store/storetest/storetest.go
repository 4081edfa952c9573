// Package storetest gives the tests of the dispatcher's packages a
// store.Store on a real Redis, under a key prefix of their own
// (throttle/redistest), a clock that moves only when told, sends built in
// the state a test needs (Send) and a stand-in for the pipeline (Runs).
//
//	clk := storetest.NewClock(start)
//	r := redistest.New(t)
//	st := storetest.New(t, r.Client, r.Prefix, clk.Now, "k1")
//	clk.Add(time.Hour)
package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher/store"
)

// Secret keys the address hashes of every test store.
var Secret = []byte("storetest-secret-0123456789abcdef")

// New returns a store on rdb under prefix (a redistest.Redis's Client and
// Prefix), with now as its clock and send records kept a day, sealing
// contacts under the data key keyID (a key derived from the id, so that
// two stores given the same id open each other's records).
func New(t testing.TB, rdb store.Client, prefix string, now func() time.Time, keyID string) *store.Store {
	t.Helper()
	st := store.NewStore(rdb, prefix, Secret, now, 24*time.Hour)
	keys, err := store.NewKeyring(map[string][]byte{keyID: bytes.Repeat([]byte(keyID[:1]), 32)}, keyID)
	if err != nil {
		t.Fatal(err)
	}
	st.Keys = keys
	return st
}

// Clock is a test's clock: it stands still until Add moves it. It is safe
// for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
