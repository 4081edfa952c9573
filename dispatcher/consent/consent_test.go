package consent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle/redistest"
)

// now is the clock of every test: consents change at now, and were given
// a day before.
var (
	now     = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	earlier = now.Add(-24 * time.Hour)
)

const (
	email = "ana@example.com"
	phone = "+33612345678"
	// run is the run whose message carried the link.
	run = "spring-r1"
)

var secret = []byte("consent-test-secret-0123456789abcdef")

type testBundle struct {
	r  *redistest.Redis
	st *store.Store
	m  *consent.Manager
}

// setup returns a Manager on a store of its own, with the topics news and
// promos (marketing) and orders (transactional).
func setup(t *testing.T) *testBundle {
	t.Helper()
	r := redistest.New(t)
	st := storetest.New(t, r.Client, r.Prefix, func() time.Time { return now }, "k1")
	ctx := context.Background()
	for _, tp := range []dispatcher.Topic{
		{ID: "news", Kind: dispatcher.Marketing},
		{ID: "promos", Kind: dispatcher.Marketing},
		{ID: "orders", Kind: dispatcher.Transactional},
	} {
		if err := st.PutTopic(ctx, &tp); err != nil {
			t.Fatal(err)
		}
	}
	return &testBundle{r: r, st: st, m: consent.New(st, func() time.Time { return now })}
}

// putContact stores c1, with an email address and, if withPhone, a
// number, sealed under a data key the store's keyring holds, or, if lost,
// under one it does not, and records the consents given.
func (b *testBundle) putContact(t *testing.T, withPhone, lost bool, given ...dispatcher.ConsentEvent) {
	t.Helper()
	ctx := context.Background()
	c := &dispatcher.Contact{ID: "c1", Email: email}
	if withPhone {
		c.Phone = phone
	}
	st := b.st
	if lost {
		st = storetest.New(t, b.r.Client, b.r.Prefix, func() time.Time { return now }, "lost")
	}
	if err := st.UpsertContact(ctx, c, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	for _, e := range given {
		if err := b.st.RecordConsent(ctx, "c1", e); err != nil {
			t.Fatal(err)
		}
	}
}

// ledger returns c1's ledger after the n events given.
func (b *testBundle) ledger(t *testing.T, n int) []dispatcher.ConsentEvent {
	t.Helper()
	l, err := b.st.ConsentLedger(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(l) < n {
		t.Fatalf("ledger lost events: %d, given %d", len(l), n)
	}
	return l[n:]
}

// assertRecorded checks that c1's ledger after the n events given holds
// exactly want (no event and an empty list alike).
func (b *testBundle) assertRecorded(t *testing.T, n int, want []dispatcher.ConsentEvent) {
	t.Helper()
	if diff := cmp.Diff(want, b.ledger(t, n), cmpEmpty); diff != "" {
		t.Errorf("events recorded (-want +got):\n%s", diff)
	}
}

// states returns c1's current consents.
func (b *testBundle) states(t *testing.T) map[string]dispatcher.ConsentState {
	t.Helper()
	cur, err := b.st.Consents(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	return cur
}

func given(k channels.Kind, topic string, st dispatcher.ConsentState, source string) dispatcher.ConsentEvent {
	return dispatcher.ConsentEvent{Channel: k, Topic: topic, State: st, Source: source, At: earlier}
}

func granted(k channels.Kind, topic string) dispatcher.ConsentEvent {
	return given(k, topic, dispatcher.Granted, "api")
}

func withdrawn(k channels.Kind, topic, source string) dispatcher.ConsentEvent {
	return given(k, topic, dispatcher.Withdrawn, source)
}

func TestWithdrawOneClick(t *testing.T) {
	t.Parallel()
	send := dispatcher.SendID(run, "c1", channels.Email)
	oneClick := func(k channels.Kind, topic string, evidence map[string]string) dispatcher.ConsentEvent {
		return dispatcher.ConsentEvent{Channel: k, Topic: topic, State: dispatcher.Withdrawn, Source: consent.SourceOneClick, Evidence: evidence, At: now}
	}
	tests := []struct {
		name    string
		noOne   bool // no contact c1
		lost    bool // c1's record does not open
		given   []dispatcher.ConsentEvent
		claims  templates.Claims
		wantErr string // code
		want    []dispatcher.ConsentEvent
		// wantRun and wantTopic are the unsubscribes counted for the run
		// and for the topic of the claims.
		wantRun, wantTopic int64
	}{
		{
			name:    "granted: withdrawn, counted for the run and the topic",
			given:   []dispatcher.ConsentEvent{granted(channels.Email, "news"), granted(channels.Email, "promos")},
			claims:  templates.Claims{Contact: "c1", Channel: "email", Topic: "news", Send: send},
			want:    []dispatcher.ConsentEvent{oneClick(channels.Email, "news", map[string]string{"send": send})},
			wantRun: 1, wantTopic: 1,
		},
		{
			name:   "already withdrawn: nothing recorded or counted",
			given:  []dispatcher.ConsentEvent{granted(channels.Email, "news"), withdrawn(channels.Email, "news", "unsubscribe-link")},
			claims: templates.Claims{Contact: "c1", Channel: "email", Topic: "news", Send: send},
		},
		{
			name:    "never given: the wish is recorded",
			claims:  templates.Claims{Contact: "c1", Channel: "email", Topic: "news", Send: send},
			want:    []dispatcher.ConsentEvent{oneClick(channels.Email, "news", map[string]string{"send": send})},
			wantRun: 1, wantTopic: 1,
		},
		{
			name:    "another channel's consent is another consent",
			given:   []dispatcher.ConsentEvent{withdrawn(channels.Email, "news", "api"), granted(channels.SMS, "news")},
			claims:  templates.Claims{Contact: "c1", Channel: "sms", Topic: "news", Send: dispatcher.SendID(run, "c1", channels.SMS)},
			want:    []dispatcher.ConsentEvent{oneClick(channels.SMS, "news", map[string]string{"send": dispatcher.SendID(run, "c1", channels.SMS)})},
			wantRun: 1, wantTopic: 1,
		},
		{
			name:      "a link without a send counts for the topic only",
			given:     []dispatcher.ConsentEvent{granted(channels.Email, "news")},
			claims:    templates.Claims{Contact: "c1", Channel: "email", Topic: "news"},
			want:      []dispatcher.ConsentEvent{oneClick(channels.Email, "news", nil)},
			wantTopic: 1,
		},
		{
			name:    "a transactional topic: the wish is recorded all the same",
			claims:  templates.Claims{Contact: "c1", Channel: "email", Topic: "orders", Send: send},
			want:    []dispatcher.ConsentEvent{oneClick(channels.Email, "orders", map[string]string{"send": send})},
			wantRun: 1, wantTopic: 1,
		},
		{
			name:    "a record that no longer opens does not stop the withdrawal",
			lost:    true,
			given:   []dispatcher.ConsentEvent{granted(channels.Email, "news")},
			claims:  templates.Claims{Contact: "c1", Channel: "email", Topic: "news", Send: send},
			want:    []dispatcher.ConsentEvent{oneClick(channels.Email, "news", map[string]string{"send": send})},
			wantRun: 1, wantTopic: 1,
		},
		{
			name:   "an unknown (or erased) contact: nothing to withdraw",
			noOne:  true,
			claims: templates.Claims{Contact: "c1", Channel: "email", Topic: "news", Send: send},
		},
		{
			name:    "a channel that is not one",
			given:   []dispatcher.ConsentEvent{granted(channels.Email, "news")},
			claims:  templates.Claims{Contact: "c1", Channel: "fax", Topic: "news", Send: send},
			wantErr: dispatcher.CodeInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			if !tt.noOne {
				b.putContact(t, true, tt.lost, tt.given...)
			}
			err := b.m.WithdrawOneClick(ctx, tt.claims)
			if tt.wantErr != "" {
				if !dispatcher.IsCode(err, tt.wantErr) {
					t.Fatalf("WithdrawOneClick: %v, want code %s", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("WithdrawOneClick: %v", err)
			}
			b.assertRecorded(t, len(tt.given), tt.want)
			if tt.noOne {
				if n, _ := b.r.Client.Exists(ctx, b.st.ContactKey("c1"), b.st.ConsentKey("c1")).Result(); n != 0 {
					t.Errorf("a withdrawal for an unknown contact wrote %d of its keys", n)
				}
			}
			runFields, err := b.st.RunFields(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			topic, err := b.st.TopicFeedback(ctx, tt.claims.Topic)
			if err != nil {
				t.Fatal(err)
			}
			gotRun := store.RunFeedback(runFields)[store.FeedbackUnsubscribes]
			gotTopic := topic[store.FeedbackUnsubscribes]
			if gotRun != tt.wantRun || gotTopic != tt.wantTopic {
				t.Errorf("unsubscribes counted: run %d, topic %d; want %d, %d", gotRun, gotTopic, tt.wantRun, tt.wantTopic)
			}
		})
	}
}

// cmpEmpty takes a nil and an empty slice or map for the same.
var cmpEmpty = cmp.FilterValues(func(x, y any) bool {
	return isEmpty(x) && isEmpty(y)
}, cmp.Comparer(func(_, _ any) bool { return true }))

func isEmpty(v any) bool {
	switch v := v.(type) {
	case []dispatcher.ConsentEvent:
		return len(v) == 0
	case []string:
		return len(v) == 0
	case map[string]string:
		return len(v) == 0
	}
	return false
}

// Two clicks at once (a mail client's prefetch and the recipient, a
// double click) record one withdrawal and count one unsubscribe; so do
// two STOPs at once.
func TestConcurrentWithdrawalsRecordOnce(t *testing.T) {
	t.Parallel()
	send := dispatcher.SendID(run, "c1", channels.SMS)
	tests := []struct {
		name     string
		withdraw func(context.Context, *consent.Manager) ([]string, error)
		want     dispatcher.ConsentEvent
		// wantTopics is what the calls returned, all together.
		wantTopics []string
		wantRun    int64
	}{
		{
			name: "one-click",
			withdraw: func(ctx context.Context, m *consent.Manager) ([]string, error) {
				return nil, m.WithdrawOneClick(ctx, templates.Claims{Contact: "c1", Channel: "sms", Topic: "news", Send: send})
			},
			want: dispatcher.ConsentEvent{Channel: channels.SMS, Topic: "news", State: dispatcher.Withdrawn, Source: consent.SourceOneClick,
				Evidence: map[string]string{"send": send}, At: now},
			wantRun: 1,
		},
		{
			name: "sms stop",
			withdraw: func(ctx context.Context, m *consent.Manager) ([]string, error) {
				return m.StopSMS(ctx, "c1", phone, map[string]string{"message": "SM1"})
			},
			want: dispatcher.ConsentEvent{Channel: channels.SMS, Topic: "news", State: dispatcher.Withdrawn, Source: consent.SourceSMSStop,
				Evidence: map[string]string{"message": "SM1"}, At: now},
			wantTopics: []string{"news"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			b.putContact(t, true, false, granted(channels.SMS, "news"))
			const n = 8
			start := make(chan struct{})
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				topics []string
				errs   []error
			)
			for range n {
				wg.Go(func() {
					<-start
					got, err := tt.withdraw(ctx, b.m)
					mu.Lock()
					defer mu.Unlock()
					topics = append(topics, got...)
					if err != nil {
						errs = append(errs, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]dispatcher.ConsentEvent{tt.want}, b.ledger(t, 1)); diff != "" {
				t.Errorf("events recorded by %d calls at once (-want +got):\n%s", n, diff)
			}
			if diff := cmp.Diff(tt.wantTopics, topics, cmpEmpty); diff != "" {
				t.Errorf("topics returned (-want +got):\n%s", diff)
			}
			runFields, err := b.st.RunFields(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if got := store.RunFeedback(runFields)[store.FeedbackUnsubscribes]; got != tt.wantRun {
				t.Errorf("unsubscribes counted %d, want %d", got, tt.wantRun)
			}
		})
	}
}

func TestSavePreferences(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 2, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	page := func(k channels.Kind, topic string, st dispatcher.ConsentState) dispatcher.ConsentEvent {
		return dispatcher.ConsentEvent{Channel: k, Topic: topic, State: st, Source: consent.SourcePreferencePage,
			Evidence: map[string]string{"page": "preferences"}, At: at.UTC()}
	}
	tests := []struct {
		name      string
		noPhone   bool
		noOne     bool
		lost      bool
		given     []dispatcher.ConsentEvent
		shown, on []string
		want      []dispatcher.ConsentEvent
		wantErr   error
	}{
		{
			name:  "toggles: granted, withdrawn, unchanged",
			given: []dispatcher.ConsentEvent{granted(channels.Email, "news"), granted(channels.Email, "promos")},
			shown: []string{"email/news", "email/promos", "sms/news"},
			on:    []string{"email/news", "sms/news"},
			want:  []dispatcher.ConsentEvent{page(channels.Email, "promos", dispatcher.Withdrawn), page(channels.SMS, "news", dispatcher.Granted)},
		},
		{
			name:  "a withdrawn consent turned on again",
			given: []dispatcher.ConsentEvent{withdrawn(channels.Email, "news", "one-click")},
			shown: []string{"email/news"},
			on:    []string{"email/news"},
			want:  []dispatcher.ConsentEvent{page(channels.Email, "news", dispatcher.Granted)},
		},
		{
			name:  "nothing changed: nothing recorded",
			given: []dispatcher.ConsentEvent{granted(channels.Email, "news"), withdrawn(channels.SMS, "news", "api")},
			shown: []string{"email/news", "sms/news", "email/promos"},
			on:    []string{"email/news"},
		},
		{
			name:  "a pair the page did not show is not touched",
			given: []dispatcher.ConsentEvent{granted(channels.Email, "promos")},
			shown: []string{"email/news"},
			on:    []string{"email/news", "sms/promos"},
			want:  []dispatcher.ConsentEvent{page(channels.Email, "news", dispatcher.Granted)},
		},
		{
			name:  "a transactional topic is not the page's to change",
			given: []dispatcher.ConsentEvent{granted(channels.Email, "orders")},
			shown: []string{"email/orders", "sms/orders"},
			on:    []string{"sms/orders"},
		},
		{
			name:  "unknown topics, malformed pairs and channels are ignored; a pair shown twice counts once",
			shown: []string{"email/nope", "email-news", "fax/news", "email/", "/news", "email/news", "email/news"},
			on:    []string{"email/nope", "email-news", "fax/news", "email/news"},
			want:  []dispatcher.ConsentEvent{page(channels.Email, "news", dispatcher.Granted)},
		},
		{
			name:    "no number: the SMS pairs are ignored",
			noPhone: true,
			given:   []dispatcher.ConsentEvent{granted(channels.SMS, "promos")},
			shown:   []string{"sms/news", "sms/promos"},
			on:      []string{"sms/news"},
		},
		{
			name:    "an unknown contact",
			noOne:   true,
			shown:   []string{"email/news"},
			on:      []string{"email/news"},
			wantErr: dispatcher.ErrNotFound,
		},
		{
			name:    "a record that no longer opens: the addresses are unknown",
			lost:    true,
			shown:   []string{"email/news"},
			on:      []string{"email/news"},
			wantErr: store.ErrUnknownDataKey,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			if !tt.noOne {
				b.putContact(t, !tt.noPhone, tt.lost, tt.given...)
			}
			got, err := b.m.SavePreferences(ctx, "c1", tt.shown, tt.on, at)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SavePreferences: %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmpEmpty); diff != "" {
				t.Errorf("events returned (-want +got):\n%s", diff)
			}
			b.assertRecorded(t, len(tt.given), tt.want)
		})
	}
}

func TestWithdrawAllMarketing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	at := now.Add(time.Minute)
	g := []dispatcher.ConsentEvent{
		granted(channels.Email, "news"),
		granted(channels.SMS, "promos"),
		granted(channels.Email, "orders"),          // transactional: stays
		granted(channels.Email, "gone"),            // a topic since deleted: marketing
		withdrawn(channels.Email, "promos", "api"), // nothing to withdraw
	}
	b.putContact(t, true, false, g...)
	page := func(k channels.Kind, topic string) dispatcher.ConsentEvent {
		return dispatcher.ConsentEvent{Channel: k, Topic: topic, State: dispatcher.Withdrawn, Source: consent.SourcePreferencePage,
			Evidence: map[string]string{"page": "preferences"}, At: at}
	}
	want := []dispatcher.ConsentEvent{page(channels.Email, "gone"), page(channels.Email, "news"), page(channels.SMS, "promos")}

	got, err := b.m.WithdrawAllMarketing(ctx, "c1", at)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events returned (-want +got):\n%s", diff)
	}
	b.assertRecorded(t, len(g), want)
	wantStates := map[string]dispatcher.ConsentState{"email/news": dispatcher.Withdrawn, "sms/promos": dispatcher.Withdrawn,
		"email/orders": dispatcher.Granted, "email/gone": dispatcher.Withdrawn, "email/promos": dispatcher.Withdrawn}
	if diff := cmp.Diff(wantStates, b.states(t)); diff != "" {
		t.Errorf("consents after (-want +got):\n%s", diff)
	}

	// Leaving twice leaves nothing more.
	got, err = b.m.WithdrawAllMarketing(ctx, "c1", at.Add(time.Minute))
	if err != nil || len(got) != 0 {
		t.Errorf("second WithdrawAllMarketing = %v, %v; want nothing", got, err)
	}
	if _, err := b.m.WithdrawAllMarketing(ctx, "nobody", at); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("WithdrawAllMarketing(unknown contact): %v, want ErrNotFound", err)
	}
}

func TestWithdrawMarketingOn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := []dispatcher.ConsentEvent{
		granted(channels.Email, "news"),
		granted(channels.Email, "promos"),
		granted(channels.Email, "orders"), // transactional: stays
		granted(channels.SMS, "news"),     // another channel: stays
	}
	b.putContact(t, true, false, g...)
	evidence := map[string]string{"report": "arf"}
	if err := b.m.WithdrawMarketingOn(ctx, "c1", channels.Email, "complaint", evidence); err != nil {
		t.Fatal(err)
	}
	got := b.ledger(t, len(g))
	slices.SortFunc(got, func(x, y dispatcher.ConsentEvent) int { return strings.Compare(x.Topic, y.Topic) })
	complaint := func(topic string) dispatcher.ConsentEvent {
		return dispatcher.ConsentEvent{Channel: channels.Email, Topic: topic, State: dispatcher.Withdrawn, Source: "complaint", Evidence: evidence, At: now}
	}
	if diff := cmp.Diff([]dispatcher.ConsentEvent{complaint("news"), complaint("promos")}, got); diff != "" {
		t.Errorf("events recorded (-want +got):\n%s", diff)
	}
	wantStates := map[string]dispatcher.ConsentState{"email/news": dispatcher.Withdrawn, "email/promos": dispatcher.Withdrawn,
		"email/orders": dispatcher.Granted, "sms/news": dispatcher.Granted}
	if diff := cmp.Diff(wantStates, b.states(t)); diff != "" {
		t.Errorf("consents after (-want +got):\n%s", diff)
	}

	// A second complaint finds nothing left to withdraw.
	if err := b.m.WithdrawMarketingOn(ctx, "c1", channels.Email, "complaint", evidence); err != nil {
		t.Fatal(err)
	}
	if got := b.ledger(t, len(g)); len(got) != 2 {
		t.Errorf("a second complaint recorded %d events, want none more", len(got)-2)
	}
	if err := b.m.WithdrawMarketingOn(ctx, "nobody", channels.Email, "complaint", evidence); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("WithdrawMarketingOn(unknown contact): %v, want ErrNotFound", err)
	}
}

func TestSetSMSConsents(t *testing.T) {
	t.Parallel()
	evidence := map[string]string{"message": "SM1"}
	stop := func(topic string, st dispatcher.ConsentState) dispatcher.ConsentEvent {
		return dispatcher.ConsentEvent{Channel: channels.SMS, Topic: topic, State: st, Source: consent.SourceSMSStop, Evidence: evidence, At: now}
	}
	tests := []struct {
		name       string
		noOne      bool
		lost       bool
		given      []dispatcher.ConsentEvent
		state      dispatcher.ConsentState
		wantTopics []string
		want       []dispatcher.ConsentEvent
	}{
		{
			name: "STOP withdraws every granted SMS marketing consent, and no other",
			given: []dispatcher.ConsentEvent{granted(channels.SMS, "promos"), granted(channels.SMS, "news"),
				granted(channels.SMS, "orders"), granted(channels.Email, "news"), withdrawn(channels.SMS, "gone", "api")},
			state:      dispatcher.Withdrawn,
			wantTopics: []string{"news", "promos"},
			want:       []dispatcher.ConsentEvent{stop("news", dispatcher.Withdrawn), stop("promos", dispatcher.Withdrawn)},
		},
		{
			name:  "STOP without any SMS consent: nothing to withdraw, nothing for START to grant later",
			given: []dispatcher.ConsentEvent{granted(channels.Email, "news")},
			state: dispatcher.Withdrawn,
		},
		{
			name: "START grants back what STOP withdrew, and no other",
			given: []dispatcher.ConsentEvent{
				granted(channels.SMS, "news"), withdrawn(channels.SMS, "news", consent.SourceSMSStop),
				granted(channels.SMS, "promos"), withdrawn(channels.SMS, "promos", "one-click"),
				withdrawn(channels.Email, "news", consent.SourceSMSStop),
				granted(channels.SMS, "orders"), withdrawn(channels.SMS, "orders", consent.SourceSMSStop),
			},
			state:      dispatcher.Granted,
			wantTopics: []string{"news"},
			want:       []dispatcher.ConsentEvent{stop("news", dispatcher.Granted)},
		},
		{
			name:  "START with everything granted: nothing",
			given: []dispatcher.ConsentEvent{granted(channels.SMS, "news")},
			state: dispatcher.Granted,
		},
		{
			name:       "a record that no longer opens does not stop a STOP",
			lost:       true,
			given:      []dispatcher.ConsentEvent{granted(channels.SMS, "news")},
			state:      dispatcher.Withdrawn,
			wantTopics: []string{"news"},
			want:       []dispatcher.ConsentEvent{stop("news", dispatcher.Withdrawn)},
		},
		{
			name:  "an unknown contact changes nothing",
			noOne: true,
			state: dispatcher.Withdrawn,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if !tt.noOne {
				b.putContact(t, true, tt.lost, tt.given...)
			}
			topics, err := b.m.SetSMSConsents(context.Background(), "c1", tt.state, evidence)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantTopics, topics, cmpEmpty); diff != "" {
				t.Errorf("topics (-want +got):\n%s", diff)
			}
			b.assertRecorded(t, len(tt.given), tt.want)
		})
	}
}

// STOP suppresses the number, START lifts that suppression only, and
// each is idempotent.
func TestStopStartSMS(t *testing.T) {
	t.Parallel()
	stopEntry := &dispatcher.Suppression{Reason: dispatcher.SuppressStop, At: now}
	bounce := &dispatcher.Suppression{Reason: dispatcher.SuppressBounce, At: now}
	type step struct {
		start           bool // START, else STOP
		contact         string
		wantTopics      []string
		wantSuppression *dispatcher.Suppression // nil: none
	}
	tests := []struct {
		name       string
		suppressed string // a reason the number is suppressed for before
		steps      []step
		wantStates map[string]dispatcher.ConsentState
	}{
		{
			name: "STOP, STOP again, START, START again",
			steps: []step{
				{contact: "c1", wantTopics: []string{"news"}, wantSuppression: stopEntry},
				{contact: "c1", wantSuppression: stopEntry},
				{start: true, contact: "c1", wantTopics: []string{"news"}},
				{start: true, contact: "c1"},
			},
			wantStates: map[string]dispatcher.ConsentState{"sms/news": dispatcher.Granted, "sms/promos": dispatcher.Withdrawn},
		},
		{
			name: "a number Missive does not know is suppressed all the same",
			steps: []step{
				{contact: "", wantSuppression: stopEntry},
				{start: true, contact: ""},
			},
			wantStates: map[string]dispatcher.ConsentState{"sms/news": dispatcher.Granted, "sms/promos": dispatcher.Withdrawn},
		},
		{
			name: "an unknown contact id: suppressed, nothing withdrawn",
			steps: []step{
				{contact: "nobody", wantSuppression: stopEntry},
			},
			wantStates: map[string]dispatcher.ConsentState{"sms/news": dispatcher.Granted, "sms/promos": dispatcher.Withdrawn},
		},
		{
			name:       "a bounce suppression is neither replaced by STOP nor lifted by START",
			suppressed: dispatcher.SuppressBounce,
			steps: []step{
				{contact: "c1", wantTopics: []string{"news"}, wantSuppression: bounce},
				{start: true, contact: "c1", wantTopics: []string{"news"}, wantSuppression: bounce},
			},
			wantStates: map[string]dispatcher.ConsentState{"sms/news": dispatcher.Granted, "sms/promos": dispatcher.Withdrawn},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			b.putContact(t, true, false, granted(channels.SMS, "news"), granted(channels.SMS, "promos"), withdrawn(channels.SMS, "promos", "one-click"))
			if tt.suppressed != "" {
				if err := b.st.Suppress(ctx, channels.SMS, phone, tt.suppressed, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			evidence := map[string]string{"message": "SM1"}
			for i, s := range tt.steps {
				call, name := b.m.StopSMS, "StopSMS"
				if s.start {
					call, name = b.m.StartSMS, "StartSMS"
				}
				topics, err := call(ctx, s.contact, phone, evidence)
				if err != nil {
					t.Fatalf("step %d: %s: %v", i, name, err)
				}
				if diff := cmp.Diff(s.wantTopics, topics, cmpEmpty); diff != "" {
					t.Errorf("step %d: %s topics (-want +got):\n%s", i, name, diff)
				}
				sup, err := b.st.Suppression(ctx, channels.SMS, phone)
				if errors.Is(err, dispatcher.ErrNotFound) {
					sup, err = nil, nil
				}
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(s.wantSuppression, sup); diff != "" {
					t.Errorf("step %d: after %s, suppression (-want +got):\n%s", i, name, diff)
				}
			}
			if diff := cmp.Diff(tt.wantStates, b.states(t)); diff != "" {
				t.Errorf("consents after (-want +got):\n%s", diff)
			}
		})
	}
}
