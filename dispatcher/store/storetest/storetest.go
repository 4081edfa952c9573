// Package storetest builds stores for tests, on a Redis of the test's own
// (throttle/redistest), with a test keyring and clock, and seeds them with
// records the way the system writes them.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
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
	st.Keys = Ring(t, keyID, map[string][]byte{keyID: bytes.Repeat([]byte(keyID[:1]), 32)})
	return st
}

// Key returns a random 32-byte data key.
func Key(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// Ring returns the keyring of keys that seals under active.
func Ring(t testing.TB, active string, keys map[string][]byte) *store.Keyring {
	t.Helper()
	k, err := store.NewKeyring(keys, active)
	if err != nil {
		t.Fatal(err)
	}
	return k
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

// Runs stands for the pipeline where a package reaches the runs'
// machinery (feedback.Runs, privacy.Runs): it records the calls and fails
// them as told. It is safe for concurrent use; set the errors before the
// calls.
type Runs struct {
	mu        sync.Mutex
	completed []string
	states    []string
	// CompleteErrs are returned by the next CompleteRun calls, in turn; a
	// nil entry lets its call through.
	CompleteErrs []error
	// StateErrs are returned by the next SetCampaignState calls, in turn;
	// a nil entry lets its call through.
	StateErrs []error
}

// CompleteRun records run as completed, unless the next of CompleteErrs
// fails it.
func (f *Runs) CompleteRun(_ context.Context, run string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := next(&f.CompleteErrs); err != nil {
		return err
	}
	f.completed = append(f.completed, run)
	return nil
}

// SetCampaignState records the call as "campaign:action" and, unless the
// next of StateErrs fails it, returns the campaign paused.
func (f *Runs) SetCampaignState(_ context.Context, id, action string) (*dispatcher.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, id+":"+action)
	if err := next(&f.StateErrs); err != nil {
		return nil, err
	}
	return &dispatcher.Campaign{ID: id, State: dispatcher.Paused}, nil
}

// Completed lists the runs completed, in order.
func (f *Runs) Completed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.completed)
}

// States lists the SetCampaignState calls, as "campaign:action", in order.
func (f *Runs) States() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.states)
}

// next pops the first of errs, nil when there is none.
func next(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

// Send makes a send of run (of campaign) to contact on channel k, on the
// topic "news", in state, as the pipeline leaves it, and returns its id.
// Queued and deferred sends (deferred for 12 hours from now) wait in the
// run's in-flight set; sending, sent and delivered ones went through it.
// The campaign is created, running, if the store has none; a send of a
// one-at-a-time run is added to its contact's index, as the API's are.
func Send(t testing.TB, st *store.Store, now time.Time, campaign, run, contact string, k channels.Kind, state string) string {
	t.Helper()
	ctx := context.Background()
	if !dispatcher.OneAtATime(campaign) {
		if _, err := st.Campaign(ctx, campaign); dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			if err := st.PutCampaign(ctx, &dispatcher.Campaign{ID: campaign, Topic: "news", State: dispatcher.Running}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := st.CreateRun(ctx, &dispatcher.Run{ID: run, Campaign: campaign, State: dispatcher.RunSending, FireAt: now}); err != nil {
		t.Fatal(err)
	}
	id := dispatcher.SendID(run, contact, k)
	d := store.Decision{Send: id, Contact: contact, Channel: k, Topic: "news", Template: "t", State: dispatcher.StateQueued}
	if state == dispatcher.StateDeferred {
		d.State, d.Until = dispatcher.StateDeferred, now.Add(12*time.Hour)
	}
	if err := st.RecordDecisions(ctx, run, []store.Decision{d}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if dispatcher.OneAtATime(campaign) {
		if err := st.IndexSends(ctx, []store.Decision{d}); err != nil {
			t.Fatal(err)
		}
	}
	var path []store.Transition
	switch state {
	case dispatcher.StateQueued, dispatcher.StateDeferred:
	case dispatcher.StateSending:
		path = []store.Transition{{From: dispatcher.StateQueued, To: dispatcher.StateSending, Deadline: now.Add(time.Hour)}}
	case dispatcher.StateSent, dispatcher.StateDelivered:
		path = []store.Transition{
			{From: dispatcher.StateQueued, To: dispatcher.StateSending, Deadline: now.Add(time.Hour)},
			{From: dispatcher.StateSending, To: dispatcher.StateSent, Fields: []any{"provider", "p-" + id}},
		}
		if state == dispatcher.StateDelivered {
			path = append(path, store.Transition{From: dispatcher.StateSent, To: dispatcher.StateDelivered})
		}
	default:
		t.Fatalf("no way to a send in state %s", state)
	}
	for _, tr := range path {
		tr.Send = id
		if rs, err := st.TransitionSends(ctx, []store.Transition{tr}); err != nil || !rs[0].Applied {
			t.Fatalf("send %s to %s: %v", id, tr.To, err)
		}
	}
	return id
}
