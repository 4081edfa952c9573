package privacy_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// start is when every test begins; its clock moves only when told.
var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

var secret = []byte("privacy-test-secret-0123456789abcdef")

var _ privacy.Runs = (*storetest.Runs)(nil)

// caps is the real throttle.Caps, whose Forget fails with the errs
// given, in turn.
type caps struct {
	*throttle.Caps
	mu   sync.Mutex
	errs []error
}

var _ privacy.Forgetter = (*caps)(nil)

func (c *caps) Forget(ctx context.Context, contact string) error {
	c.mu.Lock()
	if len(c.errs) > 0 {
		err := c.errs[0]
		c.errs = c.errs[1:]
		if err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.mu.Unlock()
	return c.Caps.Forget(ctx, contact)
}

type testBundle struct {
	r     *redistest.Redis
	st    *store.Store
	p     *privacy.Privacy
	caps  *caps
	runs  *storetest.Runs
	clock *storetest.Clock
}

// setup returns Privacy on a store of its own, with a cap of one email a
// day, and the topics news (marketing) and orders (transactional).
// configure, if not nil, changes the configuration.
func setup(t *testing.T, configure func(*privacy.Config)) *testBundle {
	t.Helper()
	r := redistest.New(t)
	return setupOn(t, r, r.Client, configure)
}

// setupOn is setup with the store on rdb, a client of r.
func setupOn(t *testing.T, r *redistest.Redis, rdb redis.UniversalClient, configure func(*privacy.Config)) *testBundle {
	t.Helper()
	clk := storetest.NewClock(start)
	st := storetest.New(t, rdb, r.Prefix, clk.Now, "k1")
	rules, err := throttle.ParseCapRules("email:1/1d")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{r: r, st: st, caps: &caps{Caps: throttle.NewCaps(rdb, r.Prefix, rules)}, runs: &storetest.Runs{}, clock: clk}
	ctx := context.Background()
	for _, tp := range []dispatcher.Topic{{ID: "news", Kind: dispatcher.Marketing}, {ID: "orders", Kind: dispatcher.Transactional}} {
		if err := st.PutTopic(ctx, &tp); err != nil {
			t.Fatal(err)
		}
	}
	cfg := privacy.Config{Store: st, Runs: b.runs, Caps: b.caps, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)}
	if configure != nil {
		configure(&cfg)
	}
	if b.p, err = privacy.New(cfg); err != nil {
		t.Fatal(err)
	}
	return b
}

// putContact stores c and records the consents given.
func (b *testBundle) putContact(t *testing.T, c dispatcher.Contact, given ...dispatcher.ConsentEvent) {
	t.Helper()
	b.putContactWith(t, b.st, c, given...)
}

// putContactWith stores c through st (which may seal it under another key)
// and records the consents given.
func (b *testBundle) putContactWith(t *testing.T, st *store.Store, c dispatcher.Contact, given ...dispatcher.ConsentEvent) {
	t.Helper()
	ctx := context.Background()
	if err := st.UpsertContact(ctx, &c, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	for _, e := range given {
		if err := b.st.RecordConsent(ctx, c.ID, e); err != nil {
			t.Fatal(err)
		}
	}
}

// send makes a send of run (of campaign) to contact on k, in state
// (storetest.Send).
func (b *testBundle) send(t *testing.T, campaign, run, contact string, k channels.Kind, state string) string {
	t.Helper()
	return storetest.Send(t, b.st, b.clock.Now(), campaign, run, contact, k, state)
}

// finishPlanning records that run's planning is over, as the planner does
// once its last batch is done: the last send to settle completes it.
func (b *testBundle) finishPlanning(t *testing.T, run string) {
	t.Helper()
	ctx := context.Background()
	if err := b.st.FinishPlan(ctx, run, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.FinishBatch(ctx, run, ""); err != nil {
		t.Fatal(err)
	}
}

// reserve counts a send of contact against its email cap, and reports
// whether the cap allowed it.
func (b *testBundle) reserve(t *testing.T, contact, send string) bool {
	t.Helper()
	ok, err := b.caps.Reserve(context.Background(), b.clock.Now(), throttle.CapRequest{Contact: contact, Channel: string(channels.Email),
		Topic: "news", SendID: send, Marketing: true})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// keysNaming lists the keys of the test whose name contains s.
func (b *testBundle) keysNaming(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	err := b.st.Scan(context.Background(), b.r.Prefix+":*", func(keys []string) error {
		for _, k := range keys {
			if strings.Contains(k, s) {
				out = append(out, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// isNotFound reports whether err says not_found.
func isNotFound(err error) bool {
	return errors.Is(err, dispatcher.ErrNotFound) || dispatcher.IsCode(err, dispatcher.CodeNotFound)
}

func TestNew(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	st := store.NewStore(r.Client, r.Prefix, secret, time.Now, time.Hour)
	cp := &caps{Caps: throttle.NewCaps(r.Client, r.Prefix, nil)}
	tests := []struct {
		name    string
		cfg     privacy.Config
		wantErr bool
	}{
		{"complete", privacy.Config{Store: st, Runs: &storetest.Runs{}, Caps: cp}, false},
		{"no store", privacy.Config{Runs: &storetest.Runs{}, Caps: cp}, true},
		{"no runs", privacy.Config{Store: st, Caps: cp}, true},
		{"no caps", privacy.Config{Store: st, Runs: &storetest.Runs{}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := privacy.New(tt.cfg)
			if (err != nil) != tt.wantErr || (p == nil) == (err == nil) {
				t.Errorf("New = %v, %v; want an error: %v", p, err, tt.wantErr)
			}
		})
	}
}
