package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
)

func TestContactReadBackEqualsWhatWasWritten(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s := b.d.Store
	in := dispatcher.Contact{ID: "ana", Email: "ana@example.com", Phone: "+33612345678", Timezone: "Europe/Paris", Locale: "fr",
		Attributes: map[string]string{"first_name": "Anaïs", "city": "Lyon"}, Tags: []string{"customer", "vip"}}
	c := in
	must(t, s.UpsertContact(ctx, &c, "Europe/Paris"))
	got, err := s.Contact(ctx, "ana")
	must(t, err)
	if diff := cmp.Diff(&c, got); diff != "" {
		t.Errorf("read back (-written +read):\n%s", diff)
	}
	batch, err := s.Contacts(ctx, []string{"nobody", "ana"})
	must(t, err)
	if batch[0] != nil || cmp.Diff(&c, batch[1]) != "" {
		t.Errorf("batch read = %v, %v", batch[0], batch[1])
	}
	if id, err := s.ContactIDByAddress(ctx, channels.Email, "ana@example.com"); err != nil || id != "ana" {
		t.Errorf("lookup by address through the blind index: %q, %v", id, err)
	}
}

func TestContactRecordHoldsNoPersonalDataInTheClear(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s := b.d.Store
	c := dispatcher.Contact{ID: "ana", Email: "ana.secret@example.com", Phone: "+33612345678",
		Attributes: map[string]string{"first_name": "Anaïs", "loyalty_card": "LC-998877"}, Tags: []string{"pregnant"}}
	must(t, s.UpsertContact(ctx, &c, "Europe/Paris"))
	_, err := s.ImportContacts(ctx, strings.NewReader(`{"id":"bob","email":"bob.secret@example.com","phone":"+33612345679","attributes":{"first_name":"Roberto"}}`+"\n"), "Europe/Paris", nil)
	must(t, err)

	var keys []string
	iter := b.redis.Client.Scan(ctx, 0, b.redis.Prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	must(t, iter.Err())
	for _, id := range []string{"ana", "bob"} {
		raw, err := b.redis.Client.Get(ctx, s.ContactKey(id)).Bytes()
		must(t, err)
		if !bytes.HasPrefix(raw, []byte("v1")) {
			t.Errorf("contact %s is not sealed", id)
		}
	}
	secrets := []string{"ana.secret", "bob.secret", "example.com", "612345678", "612345679", "Anaïs", "Roberto", "LC-998877", "pregnant"}
	for _, key := range keys {
		if b.redis.Client.Type(ctx, key).Val() != "string" {
			continue
		}
		raw := b.redis.Client.Get(ctx, key).Val()
		for _, sec := range secrets {
			if strings.Contains(raw, sec) || strings.Contains(key, sec) {
				t.Errorf("key %s holds %q in the clear", key, sec)
			}
		}
	}
}

// wantContactsPerKey checks how many contact records each data key seals.
func wantContactsPerKey(t *testing.T, s *storepkg.Store, want map[string]int64) {
	t.Helper()
	usage, err := s.DataKeyUsage(context.Background())
	must(t, err)
	if diff := cmp.Diff(want, usage.Contacts); diff != "" {
		t.Errorf("contacts per key (-want +got):\n%s", diff)
	}
}

// setupContacts is setup with the contacts ids, each with the address
// id@example.com, and the store that holds them.
func setupContacts(t *testing.T, ids ...string) (*testBundle, *storepkg.Store) {
	t.Helper()
	b := setup(t)
	for _, id := range ids {
		c := dispatcher.Contact{ID: id, Email: id + "@example.com"}
		must(t, b.d.Store.UpsertContact(context.Background(), &c, "Europe/Paris"))
	}
	return b, b.d.Store
}

func TestSealedContactCannotMoveToAnotherContact(t *testing.T) {
	t.Parallel()
	b, s := setupContacts(t, "ana", "bob")
	ctx := context.Background()
	raw, err := b.redis.Client.Get(ctx, s.ContactKey("ana")).Bytes()
	must(t, err)
	must(t, b.redis.Client.Set(ctx, s.ContactKey("bob"), raw, 0).Err())
	if _, err := s.Contact(ctx, "bob"); !errors.Is(err, storepkg.ErrSealed) {
		t.Errorf("ana's record under bob's key: %v, want ErrSealed", err)
	}
	// The batch read fails rather than take bob for erased.
	if _, err := s.Contacts(ctx, []string{"ana", "bob"}); !errors.Is(err, storepkg.ErrSealed) {
		t.Errorf("batch read with a moved record: %v, want ErrSealed", err)
	}
}

// --- rotation

// rotationBundle is a test bundle whose contacts were sealed under key a,
// and whose dispatcher now seals under key b and still opens a.
type rotationBundle struct {
	*testBundle
	ka, kb []byte
	ids    []string
	// before is a dispatcher that holds key a only.
	before *app.Dispatcher
}

// setupRotation is setup with n contacts sealed under key a, imported by a
// dispatcher that held key a only.
func setupRotation(t *testing.T, n int) *rotationBundle {
	t.Helper()
	ka, kb := storetest.Key(t), storetest.Key(t)
	b := setup(t, withConfig(func(c *app.Config) { c.DataKeys = storetest.Ring(t, "b", map[string][]byte{"a": ka, "b": kb}) }))
	before := b.cfg
	before.DataKeys = storetest.Ring(t, "a", map[string][]byte{"a": ka})
	da, err := app.New(before)
	must(t, err)
	ctx := context.Background()
	must(t, da.Store.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}))
	var ndjson strings.Builder
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("r%05d", i)
		l := storepkg.ImportLine{Contact: dispatcher.Contact{ID: ids[i], Email: ids[i] + "@example.com", Tags: []string{"vip"},
			Attributes: map[string]string{"first_name": "Ana"}},
			Consents: []dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted}}}
		line, _ := json.Marshal(l)
		ndjson.Write(append(line, '\n'))
	}
	res, err := da.Store.ImportContacts(ctx, strings.NewReader(ndjson.String()), "Europe/Paris", nil)
	must(t, err)
	if res.Imported != n {
		t.Fatalf("imported %d of %d: %v", res.Imported, n, res.Errors)
	}
	return &rotationBundle{testBundle: b, ka: ka, kb: kb, ids: ids, before: da}
}

// assertOnlyKeyBOpens reads every contact with a dispatcher that holds
// key b only.
func (rb *rotationBundle) assertOnlyKeyBOpens(t *testing.T) {
	t.Helper()
	cfg := rb.cfg
	cfg.DataKeys = storetest.Ring(t, "b", map[string][]byte{"b": rb.kb})
	d, err := app.New(cfg)
	must(t, err)
	ctx := context.Background()
	cs, err := d.Store.Contacts(ctx, rb.ids)
	if err != nil {
		t.Fatalf("contacts under key b only: %v", err)
	}
	for i, c := range cs {
		if c == nil || c.Email != rb.ids[i]+"@example.com" {
			t.Fatalf("contact %s read back as %+v", rb.ids[i], c)
		}
	}
	wantContactsPerKey(t, d.Store, map[string]int64{"b": int64(len(rb.ids))})
}

func TestRotateContactsDuringACampaign(t *testing.T) {
	t.Parallel()
	rb := setupRotation(t, 1700)
	ctx := context.Background()
	s := rb.d.Store
	rb.seedBasics(t)
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "vips", TagsAll: []string{"vip"}}))
	must(t, rb.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "autumn", Topic: "newsletter", Segment: "vips",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
	rb.startWorker(t)
	run, err := rb.d.Pipeline.StartRun(ctx, "autumn", time.Now())
	must(t, err)

	// Upserts race the rotation: none may be lost to a re-seal of the
	// record it replaced.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(rb.ids); i += 7 {
			c := dispatcher.Contact{ID: rb.ids[i], Email: rb.ids[i] + "@example.com", Tags: []string{"vip"}, Attributes: map[string]string{"first_name": "Zoé"}}
			if err := s.UpsertContact(ctx, &c, "Europe/Paris"); err != nil {
				t.Errorf("upsert: %v", err)
				return
			}
		}
	}()
	var calls, lastDone, lastTotal int64
	rotated, err := s.RotateData(ctx, func(done, total int64) {
		calls, lastDone, lastTotal = calls+1, done, total
		// Spread the walk over the run: each chunk waits for the campaign
		// to have sent as many messages as records were walked.
		if done < total {
			rb.smtp.Wait(int(done), 30*time.Second)
		}
	})
	must(t, err)
	wg.Wait()
	if calls != 4 || lastDone != 1700 || lastTotal != 1700 {
		t.Errorf("progress: %d calls, last %d/%d; want 4 calls, last 1700/1700", calls, lastDone, lastTotal)
	}
	if rotated.Contacts == 0 || rotated.Contacts > 1700 {
		t.Errorf("rotated %d records", rotated.Contacts)
	}

	r := rb.waitRun(t, run, 60*time.Second)
	if r.Counters["sent"] != 1700 || !r.Balanced {
		t.Errorf("run counters %v (balanced %v), want 1700 sent", r.Counters, r.Balanced)
	}
	seen := map[string]int{}
	for _, m := range rb.smtp.Messages() {
		for _, to := range m.To {
			seen[to]++
		}
	}
	if len(seen) != 1700 {
		t.Errorf("%d distinct recipients, want 1700", len(seen))
	}
	for to, n := range seen {
		if n != 1 {
			t.Errorf("%s got %d messages", to, n)
		}
	}
	rb.assertOnlyKeyBOpens(t)
	for i := 0; i < len(rb.ids); i += 7 {
		c, err := s.Contact(ctx, rb.ids[i])
		must(t, err)
		if c.Attributes["first_name"] != "Zoé" {
			t.Fatalf("the upsert of %s was overwritten by the rotation", rb.ids[i])
		}
	}
	if n := rb.redis.Client.Exists(ctx, s.RotateCursorKey()).Val(); n != 0 {
		t.Error("the cursor outlives a finished rotation")
	}
}

func TestRotateContactsResumesAfterAStop(t *testing.T) {
	t.Parallel()
	rb := setupRotation(t, 1200)
	s := rb.d.Store
	ctx, cancel := context.WithCancel(context.Background())
	rotated, err := s.RotateData(ctx, func(done, total int64) { cancel() })
	if !errors.Is(err, context.Canceled) || rotated.Contacts != storepkg.RotateChunk {
		t.Fatalf("stopped rotation: %d, %v; want %d, context.Canceled", rotated.Contacts, err, storepkg.RotateChunk)
	}
	usage, err := s.DataKeyUsage(context.Background())
	must(t, err)
	if diff := cmp.Diff(map[string]int64{"a": 700, "b": 500}, usage.Contacts); diff != "" {
		t.Errorf("contacts per key after the first chunk (-want +got):\n%s", diff)
	}

	var dones []int64
	rotated, err = s.RotateData(context.Background(), func(done, total int64) { dones = append(dones, done) })
	must(t, err)
	if rotated.Contacts != 700 {
		t.Errorf("resumed rotation re-sealed %d records, want 700", rotated.Contacts)
	}
	if diff := cmp.Diff([]int64{1000, 1200}, dones); diff != "" {
		t.Errorf("resumed progress (-want +got):\n%s", diff)
	}
	rb.assertOnlyKeyBOpens(t)

	// Nothing left to do: a third run walks and re-seals nothing.
	rotated, err = s.RotateData(context.Background(), nil)
	if err != nil || rotated != (storepkg.Rotation{}) {
		t.Errorf("third rotation: %+v, %v", rotated, err)
	}
}

func TestRotateContactsSealsPlainRecordsAndReportsUnreadableOnes(t *testing.T) {
	t.Parallel()
	b, s := setupContacts(t, "ana", "bob", "eve")
	ctx := context.Background()
	// ana as stored before encryption; eve under a key the ring lacks.
	must(t, b.redis.Client.Set(ctx, s.ContactKey("ana"), `{"id":"ana","email":"ana@example.com","created_at":"2026-01-02T00:00:00Z","updated_at":"2026-01-02T00:00:00Z"}`, 0).Err())
	gone := storetest.Ring(t, "x", map[string][]byte{"x": storetest.Key(t)})
	must(t, b.redis.Client.Set(ctx, s.ContactKey("eve"), gone.Seal([]byte(`{"id":"eve"}`), storepkg.ContactAAD("eve")), 0).Err())

	if c, err := s.Contact(ctx, "ana"); err != nil || c.Email != "ana@example.com" {
		t.Errorf("plain record: %v, %v", c, err)
	}
	rotated, err := s.RotateData(ctx, nil)
	if !errors.Is(err, storepkg.ErrUnknownDataKey) || rotated.Contacts != 1 {
		t.Errorf("rotation: %d, %v; want 1, ErrUnknownDataKey", rotated.Contacts, err)
	}
	raw := b.redis.Client.Get(ctx, s.ContactKey("ana")).Val()
	if strings.Contains(raw, "ana@example.com") {
		t.Error("the plain record is still plain after rotation")
	}
	wantContactsPerKey(t, s, map[string]int64{"d0": 2, "x": 1})
}

// Enrolment data and webhook endpoints are sealed under the data keys
// too: the rotation seals them again, so that the old key may go.
func TestRotateDataSealsEnrolmentsAndWebhooks(t *testing.T) {
	t.Parallel()
	rb := setupRotation(t, 3)
	ctx := context.Background()
	old := rb.before.Store
	now := time.Now().UTC()
	for _, c := range rb.ids[:2] {
		_, created, err := old.Enrol(ctx, &dispatcher.Enrolment{Sequence: "welcome", Contact: c, Version: 1, Trigger: dispatcher.TriggerAPI,
			State: dispatcher.EnrolmentActive, At: now, Since: now, StartedAt: now,
			Data: map[string]any{"order": "A-" + c, "total": 42.5}}, false)
		if err != nil || !created {
			t.Fatalf("enrol %s under key a: %v %v", c, created, err)
		}
	}
	must(t, old.PutWebhook(ctx, &storepkg.WebhookEndpoint{ID: "crm", URL: "https://crm.example/hook", Events: []string{"sent"}, Secret: "whsec-123"}))

	rotated, err := rb.d.Store.RotateData(ctx, nil)
	must(t, err)
	if diff := cmp.Diff(storepkg.Rotation{Contacts: 3, Enrolments: 2, Webhooks: 1}, rotated); diff != "" {
		t.Errorf("rotated (-want +got):\n%s", diff)
	}
	rb.assertOnlyKeyBOpens(t)

	cfg := rb.cfg
	cfg.DataKeys = storetest.Ring(t, "b", map[string][]byte{"b": rb.kb})
	d, err := app.New(cfg)
	must(t, err)
	for _, c := range rb.ids[:2] {
		r, err := d.Store.Enrolment(ctx, c, "welcome")
		must(t, err)
		want := map[string]any{"order": "A-" + c, "total": 42.5}
		if diff := cmp.Diff(want, r.Data); diff != "" {
			t.Errorf("enrolment data of %s under key b only (-want +got):\n%s", c, diff)
		}
	}
	ep, err := d.Store.Webhook(ctx, "crm")
	if err != nil || ep.Secret != "whsec-123" {
		t.Errorf("webhook endpoint under key b only: %+v, %v", ep, err)
	}
	usage, err := d.Store.DataKeyUsage(ctx)
	must(t, err)
	if diff := cmp.Diff(storepkg.KeyUsage{Contacts: map[string]int64{"b": 3}, Enrolments: map[string]int64{"b": 2}, Webhooks: map[string]int64{"b": 1}}, usage); diff != "" {
		t.Errorf("records per key (-want +got):\n%s", diff)
	}
}

func TestReSealNeverOverwritesAChangedRecord(t *testing.T) {
	t.Parallel()
	b, s := setupContacts(t, "ana")
	ctx := context.Background()
	stale, err := b.redis.Client.Get(ctx, s.ContactKey("ana")).Bytes()
	must(t, err)
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.org"}, "Europe/Paris"))
	n, err := storepkg.ReSealScript.Run(ctx, b.redis.Client, []string{s.ContactKey("ana")}, stale, "replacement").Int64()
	if err != nil || n != 0 {
		t.Fatalf("compare-and-set on a changed record: %d, %v; want 0", n, err)
	}
	got, err := s.Contact(ctx, "ana")
	if err != nil || got.Email != "ana@example.org" {
		t.Errorf("after a refused compare-and-set: %v, %v", got, err)
	}
}

// BenchmarkContactMemory reports the Redis memory of a contact record,
// sealed as stored and, for comparison, as the plain JSON stored before
// encryption, and of its blind index entries (P:addr:<hash>), averaged
// over 1000 contacts with an email, a phone, two attributes and a tag.
// Run:
//
//	go test ./dispatcher -run '^$' -bench ContactMemory -benchtime 1x
func BenchmarkContactMemory(b *testing.B) {
	const n = 1000
	for range b.N {
		tb := setup(b)
		ctx := context.Background()
		s := tb.d.Store
		var ndjson strings.Builder
		for i := range n {
			l := dispatcher.Contact{ID: fmt.Sprintf("m%07d", i), Email: fmt.Sprintf("m%07d@example.com", i), Phone: fmt.Sprintf("+336%08d", 12000000+i),
				Attributes: map[string]string{"first_name": "Ana", "city": "Lyon"}, Tags: []string{"customer"}}
			line, _ := json.Marshal(l)
			ndjson.Write(append(line, '\n'))
		}
		res, err := s.ImportContacts(ctx, strings.NewReader(ndjson.String()), "Europe/Paris", nil)
		if err != nil || res.Imported != n {
			b.Fatalf("import: %v %+v", err, res)
		}
		var sealed, plain, index, sealedLen, plainLen int64
		rdb := tb.redis.Client
		for i := range n {
			id := fmt.Sprintf("m%07d", i)
			key := s.ContactKey(id)
			m, err := rdb.MemoryUsage(ctx, key, 0).Result()
			if err != nil {
				b.Skipf("MEMORY USAGE: %v (needs a real Redis)", err)
			}
			sealed += m
			raw, _ := rdb.Get(ctx, key).Bytes()
			js, _, err := s.OpenContactJSON(id, raw)
			if err != nil {
				b.Fatal(err)
			}
			sealedLen, plainLen = sealedLen+int64(len(raw)), plainLen+int64(len(js))
			scratch := s.Key("plain", "{"+id+"}")
			rdb.Set(ctx, scratch, js, 0)
			plain += rdb.MemoryUsage(ctx, scratch, 0).Val()
			rdb.Del(ctx, scratch)
			c, _ := s.Contact(ctx, id)
			for _, k := range channels.Kinds {
				index += rdb.MemoryUsage(ctx, s.Key("addr", s.AddressHash(k, c.Address(k))), 0).Val()
			}
		}
		b.ReportMetric(float64(sealed)/n, "sealed-B/contact")
		b.ReportMetric(float64(plain)/n, "plain-B/contact")
		b.ReportMetric(float64(index)/n, "index-B/contact")
		b.ReportMetric(float64(sealedLen)/n, "sealed-value-B")
		b.ReportMetric(float64(plainLen)/n, "plain-value-B")
	}
}

// BenchmarkContactDecode is the Go cost of reading one contact record as
// the gate does: plain JSON (before encryption) against sealed JSON.
//
//	go test ./dispatcher -run '^$' -bench ContactDecode
func BenchmarkContactDecode(b *testing.B) {
	s := &storepkg.Store{Keys: storetest.Ring(b, "a", map[string][]byte{"a": storetest.Key(b)})}
	c := &dispatcher.Contact{ID: "b0000001", Email: "b0000001@example.com", Timezone: "Europe/Paris",
		Attributes: map[string]string{"first_name": "Ana"}, Tags: []string{"customer"}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	plain, _ := json.Marshal(c)
	sealed, err := s.SealContact(c)
	if err != nil {
		b.Fatal(err)
	}
	for name, raw := range map[string][]byte{"plain": plain, "sealed": sealed} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.OpenContact(c.ID, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The whole life of a campaign against a real Redis, then every key and
// value Missive and its queues left in Redis, and every log line, are read:
// no seeded address, number or attribute value appears anywhere.
func TestNothingInTheClear(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.BounceDomain = "bounce.shop.example" }), withBasics())
	ctx := context.Background()
	var secrets []string
	for i := range 20 {
		c := &dispatcher.Contact{ID: fmt.Sprintf("p%02d", i), Email: fmt.Sprintf("secret.person%02d@privacy.example", i),
			Phone: fmt.Sprintf("+336123456%02d", i), Attributes: map[string]string{"first_name": fmt.Sprintf("Zéphyrine%02d", i)}}
		must(t, b.d.Store.UpsertContact(ctx, c, "Europe/Paris"))
		grantConsent(t, b, c.ID, channels.Email, channels.SMS)
		secrets = append(secrets, c.Email, c.Phone, strings.TrimPrefix(c.Phone, "+"), c.Attributes["first_name"])
	}
	must(t, b.d.Store.Suppress(ctx, channels.Email, "secret.person00@privacy.example", dispatcher.SuppressBounce, time.Time{}))
	b.smtp.Reject("secret.person01@privacy.example", 451, "4.2.1", "later")
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "leak", Topic: "newsletter", Segment: "all",
		Channels: []channels.Kind{channels.Email, channels.SMS}, Templates: map[channels.Kind]string{channels.Email: "news-mail", channels.SMS: "news-sms"}}))
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "leak", time.Now())
	must(t, err)
	b.smtp.Wait(18, 20*time.Second)
	b.twilio.Wait(20, 20*time.Second)

	// Feedback and a one-click, so that their records exist too.
	must(t, b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Send: dispatcher.SendID(run, "p02", channels.Email), Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"}))
	link, err := b.d.Pipeline.UnsubscribeURL("p03", channels.Email, "newsletter", dispatcher.SendID(run, "p03", channels.Email))
	must(t, err)
	if code := b.oneClick(t, b.srv.URL, link); code != http.StatusOK {
		t.Fatalf("one-click answered %d", code)
	}

	var keys int
	for _, pattern := range []string{b.redis.Prefix + "*", "asynq:{" + b.redis.Prefix + "*"} {
		iter := b.redis.Client.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys++
			key := iter.Val()
			for _, v := range append(values(ctx, t, b.redis.Client, key), key) {
				for _, s := range secrets {
					if strings.Contains(v, s) {
						t.Errorf("key %s holds personal data in the clear", key)
					}
				}
			}
		}
	}
	if keys < 50 {
		t.Errorf("read only %d keys: the test reads the wrong place", keys)
	}
	for _, s := range secrets {
		if strings.Contains(b.logs.String(), s) {
			t.Errorf("the logs hold personal data")
			break
		}
	}
	t.Logf("read %d keys and %d bytes of logs", keys, len(b.logs.String()))
}

// values returns everything a key holds, whatever its type.
func values(ctx context.Context, t *testing.T, rdb *redis.Client, key string) []string {
	t.Helper()
	switch rdb.Type(ctx, key).Val() {
	case "string":
		return []string{rdb.Get(ctx, key).Val()}
	case "hash":
		var out []string
		for k, v := range rdb.HGetAll(ctx, key).Val() {
			out = append(out, k, v)
		}
		return out
	case "list":
		return rdb.LRange(ctx, key, 0, -1).Val()
	case "set":
		return rdb.SMembers(ctx, key).Val()
	case "zset":
		return rdb.ZRange(ctx, key, 0, -1).Val()
	case "stream":
		var out []string
		for _, m := range rdb.XRange(ctx, key, "-", "+").Val() {
			for k, v := range m.Values {
				out = append(out, k, fmt.Sprint(v))
			}
		}
		return out
	}
	return nil
}
