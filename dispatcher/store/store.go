package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// Client is the Redis client the store works with: a single server,
// Sentinel or Cluster. Other packages name it through this alias, so that
// the store stays the one package that speaks Redis.
type Client = redis.UniversalClient

// IsCluster reports whether rdb is a Redis Cluster client: a key's slot,
// not the client, then decides which server holds it.
func IsCluster(rdb Client) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// Store keeps Missive's records in Redis, under the key layout of
// keys.go. It is safe for concurrent use.
type Store struct {
	Redis  redis.UniversalClient
	p      string
	secret []byte
	// Keys seals contact records; Dispatcher sets it from Config.DataKeys.
	Keys *Keyring
	now  func() time.Time
	// sendTTL is how long send records are kept.
	sendTTL time.Duration
	// ClaimReplicas, when positive, makes each send claim wait until that
	// many replicas hold it (WAIT) before the message may leave, so that a
	// failover cannot forget it; see ClaimSends. Default 0: the claim is as
	// durable as the server's own persistence (CheckDurability says how).
	ClaimReplicas int
	// ClaimWait bounds that wait. Default 1 s.
	ClaimWait time.Duration
	// AnalyticsRetention is how long analytics counters are kept (see
	// RunAnalytics). Default AnalyticsRetention, 400 days.
	AnalyticsRetention time.Duration
	// ConsentsImported, when set, is told the consent events the bulk
	// import wrote for each contact, once written (outbound webhooks).
	ConsentsImported func(ctx context.Context, contact string, evs []dispatcher.ConsentEvent)
	// TagsAdded, when set, is told the tags a contact upsert or an import
	// chunk added, by contact, once written (sequences enrol and stop on
	// them). They are journaled first (tagjournal.go): when it fails, or
	// the process dies before it is told, the scheduler's leader tells it
	// again from the journal.
	TagsAdded func(ctx context.Context, added map[string][]string) error
	// hashers keeps *addressHashers: keying an HMAC costs two hash blocks
	// and several allocations, more than hashing an address with it.
	hashers sync.Pool
}

// addressHasher is an HMAC keyed with the store's secret, reset after
// each use, with room for what it hashes and its sum.
type addressHasher struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

// NewStore returns a Store on rdb under prefix; secret keys the address
// hashes, and send records are kept sendTTL. Set Keys before use.
func NewStore(rdb redis.UniversalClient, prefix string, secret []byte, now func() time.Time, sendTTL time.Duration) *Store {
	return &Store{Redis: rdb, p: prefix, secret: secret, now: now, sendTTL: sendTTL}
}

// AddressHash is the keyed hash by which suppression entries and the
// address index find an address without storing it.
func (s *Store) AddressHash(k channels.Kind, addr string) string {
	h, _ := s.hashers.Get().(*addressHasher)
	if h == nil {
		h = &addressHasher{mac: hmac.New(sha256.New, s.secret)}
	}
	h.in = append(append(append(h.in[:0], k...), 0), dispatcher.NormalizeAddress(k, addr)...)
	h.mac.Write(h.in)
	var out [40]byte
	hex.Encode(out[:], h.mac.Sum(h.sum[:0])[:20])
	h.mac.Reset()
	clear(h.in) // an address is not kept past its use
	if cap(h.in) > 1024 {
		h.in = nil
	}
	s.hashers.Put(h)
	return string(out[:])
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// UpsertContact validates and stores c, creating or replacing it.
func (s *Store) UpsertContact(ctx context.Context, c *dispatcher.Contact, defaultTZ string) error {
	if err := c.Normalize(defaultTZ); err != nil {
		return err
	}
	l := []ImportLine{{Contact: *c}}
	if err := s.upsertMany(ctx, l); err != nil {
		return err
	}
	*c = l[0].Contact
	return nil
}

// Contact returns the contact with that id, or ErrNotFound. Returns an
// error wrapping ErrUnknownDataKey or ErrSealed if the record does not
// open with the keyring.
func (s *Store) Contact(ctx context.Context, id string) (*dispatcher.Contact, error) {
	b, err := s.Redis.Get(ctx, s.ContactKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, dispatcher.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c, _, err := s.OpenContact(id, b)
	return c, err
}

// Contacts loads many contacts in one round trip and decrypts them here;
// missing ones are nil. A record that does not open fails the whole call:
// taking it for a missing contact would cancel its sends as erased.
func (s *Store) Contacts(ctx context.Context, ids []string) ([]*dispatcher.Contact, error) {
	raw, err := s.contactRecords(ctx, ids)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, r := range raw {
		if r != nil {
			n++
		}
	}
	out := make([]*dispatcher.Contact, len(ids))
	cs := make([]dispatcher.Contact, n) // one allocation for the batch
	for i, r := range raw {
		if r == nil {
			continue
		}
		js, _, err := s.OpenContactJSON(ids[i], r)
		if err != nil {
			return nil, err
		}
		c := &cs[len(cs)-n]
		n--
		if err := decodeContact(js, c); err != nil {
			return nil, fmt.Errorf("decode contact %s: %w", ids[i], err)
		}
		out[i] = c
	}
	return out, nil
}

// contactRecords reads the stored records of ids, nil where there is
// none: in MGETs of up to 1,000 keys on one server (one command, not one a
// contact), in GETs on Redis Cluster, whose contacts live on many slots.
func (s *Store) contactRecords(ctx context.Context, ids []string) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if IsCluster(s.Redis) {
		cmds, err := pipelineEach(ctx, s, ids, func(p redis.Pipeliner, id string) *redis.StringCmd {
			return p.Get(ctx, s.ContactKey(id))
		})
		if err != nil {
			return nil, err
		}
		for i, cmd := range cmds {
			b, err := cmd.Bytes()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[i] = b
		}
		return out, nil
	}
	const perCommand = 1000
	cmds := make([]*redis.SliceCmd, 0, (len(ids)+perCommand-1)/perCommand)
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for start := 0; start < len(ids); start += perCommand {
			chunk := ids[start:min(start+perCommand, len(ids))]
			keys := make([]string, len(chunk))
			for i, id := range chunk {
				keys[i] = s.ContactKey(id)
			}
			cmds = append(cmds, p.MGet(ctx, keys...))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	size, n := 0, 0
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			if v, ok := v.(string); ok {
				size += len(v)
			}
			n++
		}
	}
	if n != len(ids) {
		return nil, fmt.Errorf("read contacts: %d records for %d ids", n, len(ids))
	}
	buf := make([]byte, 0, size) // one allocation for the records of the call
	i := 0
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			if v, ok := v.(string); ok {
				buf = append(buf, v...)
				out[i] = buf[len(buf)-len(v) : len(buf) : len(buf)]
			}
			i++
		}
	}
	return out, nil
}

// decodeContact decodes the JSON of a contact record into c, which must be
// zero, as json.Unmarshal does. What SealContact writes (json.Marshal of a
// Contact: known keys, strings without escapes) takes a path without
// reflection, several times faster: the gate decodes every contact of a
// run. Anything else goes to json.Unmarshal.
func decodeContact(js []byte, c *dispatcher.Contact) error {
	if scanContact(js, c) {
		return nil
	}
	*c = dispatcher.Contact{}
	return json.Unmarshal(js, c)
}

// scanContact is decodeContact's fast path. It reports false, leaving c
// in any state, for any input it does not read exactly as json.Unmarshal
// would: whitespace, escapes, invalid UTF-8, null, numbers, keys it does
// not know or meets twice.
func scanContact(b []byte, c *dispatcher.Contact) bool {
	d := contactScanner{b: b}
	if !d.skip('{') {
		return false
	}
	if d.skip('}') {
		return d.i == len(b)
	}
	var seen uint16
	for {
		key, ok := d.str()
		if !ok || !d.skip(':') {
			return false
		}
		var field uint16
		switch string(key) {
		case "id":
			field = 1 << 0
			c.ID, ok = d.strValue()
		case "email":
			field = 1 << 1
			c.Email, ok = d.strValue()
		case "phone":
			field = 1 << 2
			c.Phone, ok = d.strValue()
		case "timezone":
			field = 1 << 3
			c.Timezone, ok = d.strValue()
		case "locale":
			field = 1 << 4
			c.Locale, ok = d.strValue()
		case "attributes":
			field = 1 << 5
			ok = d.strMap(&c.Attributes)
		case "tags":
			field = 1 << 6
			ok = d.strList(&c.Tags)
		case "created_at":
			field = 1 << 7
			ok = d.time(&c.CreatedAt)
		case "updated_at":
			field = 1 << 8
			ok = d.time(&c.UpdatedAt)
		default:
			return false
		}
		if !ok || seen&field != 0 {
			return false
		}
		seen |= field
		if d.skip(',') {
			continue
		}
		return d.skip('}') && d.i == len(b)
	}
}

// contactScanner reads the JSON of a contact record for scanContact.
type contactScanner struct {
	b []byte
	i int
}

// skip consumes ch if it comes next.
func (d *contactScanner) skip(ch byte) bool {
	if d.i < len(d.b) && d.b[d.i] == ch {
		d.i++
		return true
	}
	return false
}

// str consumes a string without escapes or control characters, in valid
// UTF-8, and returns its bytes.
func (d *contactScanner) str() ([]byte, bool) {
	if !d.skip('"') {
		return nil, false
	}
	start, ascii := d.i, true
	for ; d.i < len(d.b); d.i++ {
		switch ch := d.b[d.i]; {
		case ch == '"':
			s := d.b[start:d.i]
			d.i++
			return s, ascii || utf8.Valid(s)
		case ch == '\\', ch < 0x20:
			return nil, false
		case ch >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (d *contactScanner) strValue() (string, bool) {
	s, ok := d.str()
	return string(s), ok
}

// strMap consumes an object of strings.
func (d *contactScanner) strMap(m *map[string]string) bool {
	if !d.skip('{') {
		return false
	}
	*m = map[string]string{}
	if d.skip('}') {
		return true
	}
	for {
		k, ok := d.str()
		if !ok || !d.skip(':') {
			return false
		}
		v, ok := d.str()
		if !ok {
			return false
		}
		(*m)[string(k)] = string(v)
		if d.skip(',') {
			continue
		}
		return d.skip('}')
	}
}

// strList consumes an array of strings.
func (d *contactScanner) strList(l *[]string) bool {
	if !d.skip('[') {
		return false
	}
	*l = []string{}
	if d.skip(']') {
		return true
	}
	for {
		v, ok := d.str()
		if !ok {
			return false
		}
		*l = append(*l, string(v))
		if d.skip(',') {
			continue
		}
		return d.skip(']')
	}
}

// time consumes a string and parses it as json.Unmarshal parses a
// time.Time: by the time's own UnmarshalJSON.
func (d *contactScanner) time(t *time.Time) bool {
	start := d.i
	if _, ok := d.str(); !ok {
		return false
	}
	return t.UnmarshalJSON(d.b[start:d.i]) == nil
}

// ContactAAD binds a sealed contact to its record: a ciphertext copied
// under another contact's key does not open.
func ContactAAD(id string) []byte { return []byte("contact:" + id) }

// SealContact encodes c for Redis: its JSON, sealed under the active data
// key. Email, phone, attributes and tags are never stored in the clear.
func (s *Store) SealContact(c *dispatcher.Contact) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode contact: %w", err)
	}
	return s.Keys.Seal(b, ContactAAD(c.ID)), nil
}

// OpenContactJSON returns the JSON of a stored contact record and the id
// of the key that sealed it. A record in plain JSON, written before
// contacts were encrypted, is read with key id "": RotateData seals it.
func (s *Store) OpenContactJSON(id string, b []byte) (js []byte, keyID string, err error) {
	if len(b) > 0 && b[0] == '{' {
		return b, "", nil
	}
	js, keyID, err = s.Keys.Open(b, ContactAAD(id))
	if err != nil {
		return nil, keyID, fmt.Errorf("open contact %s: %w", id, err)
	}
	return js, keyID, nil
}

// OpenContact decodes a stored contact record (see openContactJSON).
func (s *Store) OpenContact(id string, b []byte) (*dispatcher.Contact, string, error) {
	js, keyID, err := s.OpenContactJSON(id, b)
	if err != nil {
		return nil, keyID, err
	}
	var c dispatcher.Contact
	if err := json.Unmarshal(js, &c); err != nil {
		return nil, keyID, fmt.Errorf("decode contact %s: %w", id, err)
	}
	return &c, keyID, nil
}

// ContactExists reports whether the contact id exists.
func (s *Store) ContactExists(ctx context.Context, id string) (bool, error) {
	n, err := s.Redis.Exists(ctx, s.ContactKey(id)).Result()
	return n == 1, err
}

// ContactIDByAddress finds a contact by email or phone, or ErrNotFound.
func (s *Store) ContactIDByAddress(ctx context.Context, k channels.Kind, addr string) (string, error) {
	id, err := s.Redis.Get(ctx, s.Key("addr", s.AddressHash(k, addr))).Result()
	if errors.Is(err, redis.Nil) {
		return "", dispatcher.ErrNotFound
	}
	return id, err
}

// CountContacts returns how many contacts are stored.
func (s *Store) CountContacts(ctx context.Context) (int64, error) {
	return s.Redis.ZCard(ctx, s.Key("contacts")).Result()
}

// ConsentCurrent is the current consent of a contact for a channel and
// topic: its state, and when and from where it was decided.
type ConsentCurrent struct {
	// State is a consent's; a preference has none.
	State  dispatcher.ConsentState `json:"state,omitempty"`
	At     time.Time               `json:"at"`
	Source string                  `json:"source"`
	// Value is a preference's value (ConsentEvent.Value); a consent has
	// none.
	Value string `json:"value,omitempty"`
}

// PreferenceField names a current preference of kind beside the current
// consents, in what ChangeConsents' decide gets: a consent field always
// has a "/", this one never.
func PreferenceField(kind string) string { return prefPrefix + kind }

const prefPrefix = "pref:"

// eventField names where the current state of what e sets is kept: its
// consent field in the consents hash, or its kind in the preferences hash
// (pref reports which).
func eventField(e *dispatcher.ConsentEvent) (field string, pref bool) {
	if e.Kind != "" {
		if e.Topic != "" {
			return e.Kind + "/" + e.Topic, true
		}
		return e.Kind, true
	}
	return ConsentField(e.Channel, e.Topic), false
}

// ConsentField names the consent of a channel and topic in the contact's
// current consents: "channel/topic".
func ConsentField(k channels.Kind, topic string) string { return string(k) + "/" + topic }

// RecordConsent appends e to the contact's ledger and updates the current
// state. Returns ErrNotFound if the contact does not exist.
func (s *Store) RecordConsent(ctx context.Context, contact string, e dispatcher.ConsentEvent) error {
	if e.At.IsZero() {
		e.At = s.now().UTC()
	}
	_, err := s.ChangeConsents(ctx, contact, false, func(*dispatcher.Contact, map[string]ConsentCurrent) []dispatcher.ConsentEvent {
		return []dispatcher.ConsentEvent{e}
	})
	return err
}

// ConsentLedger returns the contact's consent history, oldest first.
func (s *Store) ConsentLedger(ctx context.Context, contact string) ([]dispatcher.ConsentEvent, error) {
	raw, err := s.Redis.LRange(ctx, s.ledgerKey(contact), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]dispatcher.ConsentEvent, 0, len(raw))
	for _, r := range raw {
		var e sealedEvent
		if json.Unmarshal([]byte(r), &e) == nil {
			out = append(out, e.ConsentEvent)
		}
	}
	return out, nil
}

// Consents returns the current consent state per "channel/topic".
func (s *Store) Consents(ctx context.Context, contact string) (map[string]dispatcher.ConsentState, error) {
	cur, err := s.ConsentStates(ctx, contact)
	if err != nil {
		return nil, err
	}
	out := make(map[string]dispatcher.ConsentState, len(cur))
	for f, c := range cur {
		out[f] = c.State
	}
	return out, nil
}

// ConsentStates returns the contact's current consents by "channel/topic",
// with when and from where each was decided.
func (s *Store) ConsentStates(ctx context.Context, contact string) (map[string]ConsentCurrent, error) {
	raw, err := s.Redis.HGetAll(ctx, s.ConsentKey(contact)).Result()
	if err != nil {
		return nil, err
	}
	return decodeConsents(raw), nil
}

// decodeConsents reads a contact's consents hash; a field that does not
// decode is left out.
func decodeConsents(raw map[string]string) map[string]ConsentCurrent {
	out := make(map[string]ConsentCurrent, len(raw))
	for f, v := range raw {
		var c ConsentCurrent
		if json.Unmarshal([]byte(v), &c) == nil {
			out[f] = c
		}
	}
	return out
}

// Suppress adds an address to the suppression list. A zero until means
// for good; a permanent entry is never shortened by a temporary one.
func (s *Store) Suppress(ctx context.Context, k channels.Kind, addr, reason string, until time.Time) error {
	return s.suppressHash(ctx, s.AddressHash(k, addr), reason, until)
}

func (s *Store) suppressHash(ctx context.Context, hash, reason string, until time.Time) error {
	switch reason {
	case dispatcher.SuppressBounce, dispatcher.SuppressComplaint, dispatcher.SuppressStop, dispatcher.SuppressUnsubscribe:
	default:
		return dispatcher.Invalid("reason", "must be bounce, complaint, stop or unsubscribe")
	}
	key := s.Key("sup", hash)
	b, _ := json.Marshal(dispatcher.Suppression{Reason: reason, At: s.now().UTC(), Until: until})
	if until.IsZero() {
		return s.Redis.Set(ctx, key, b, 0).Err()
	}
	ttl := until.Sub(s.now())
	if ttl <= 0 {
		return nil
	}
	// A temporary entry never replaces a permanent one.
	ok, err := s.Redis.SetNX(ctx, key, b, ttl).Result()
	if err != nil || ok {
		return err
	}
	cur, err := s.Redis.PTTL(ctx, key).Result()
	if err == nil && cur > 0 && cur < ttl {
		return s.Redis.Set(ctx, key, b, ttl).Err()
	}
	return err
}

// Unsuppress removes an address from the suppression list.
func (s *Store) Unsuppress(ctx context.Context, k channels.Kind, addr string) error {
	return s.Redis.Del(ctx, s.Key("sup", s.AddressHash(k, addr))).Err()
}

// Suppression returns the entry for an address, or ErrNotFound.
func (s *Store) Suppression(ctx context.Context, k channels.Kind, addr string) (*dispatcher.Suppression, error) {
	b, err := s.Redis.Get(ctx, s.Key("sup", s.AddressHash(k, addr))).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, dispatcher.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var sup dispatcher.Suppression
	return &sup, json.Unmarshal(b, &sup)
}

func (s *Store) putJSON(ctx context.Context, hash, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Redis.HSet(ctx, s.Key(hash), id, b).Err()
}

func (s *Store) getJSON(ctx context.Context, hash, id, what string, v any) error {
	b, err := s.Redis.HGet(ctx, s.Key(hash), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return dispatcher.NotFound(what)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func listJSON[T any](ctx context.Context, s *Store, hash string) ([]T, error) {
	raw, err := s.Redis.HGetAll(ctx, s.Key(hash)).Result()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(raw))
	for id := range raw {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		var v T
		if err := json.Unmarshal([]byte(raw[id]), &v); err == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// pipelineEach sends, in one pipeline, the command cmd queues for each
// of xs and returns the commands in the order of xs. A missing key is
// not an error: each command tells its own.
func pipelineEach[T any, C redis.Cmder](ctx context.Context, s *Store, xs []T, cmd func(p redis.Pipeliner, x T) C) ([]C, error) {
	cmds := make([]C, len(xs))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, x := range xs {
			cmds[i] = cmd(p, x)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	return cmds, nil
}

// PutTopic creates or replaces a topic.
func (s *Store) PutTopic(ctx context.Context, t *dispatcher.Topic) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return s.putJSON(ctx, "topics", t.ID, t)
}

// Topic returns a topic or an error with code not_found.
func (s *Store) Topic(ctx context.Context, id string) (*dispatcher.Topic, error) {
	var t dispatcher.Topic
	return &t, s.getJSON(ctx, "topics", id, "topic", &t)
}

// Topics lists the topics by id.
func (s *Store) Topics(ctx context.Context) ([]dispatcher.Topic, error) {
	return listJSON[dispatcher.Topic](ctx, s, "topics")
}

// PutSegment creates or replaces a segment.
func (s *Store) PutSegment(ctx context.Context, sg *dispatcher.Segment) error {
	if err := sg.Validate(); err != nil {
		return err
	}
	return s.putJSON(ctx, "segments", sg.ID, sg)
}

// Segment returns a segment or an error with code not_found.
func (s *Store) Segment(ctx context.Context, id string) (*dispatcher.Segment, error) {
	var sg dispatcher.Segment
	return &sg, s.getJSON(ctx, "segments", id, "segment", &sg)
}

// Segments lists the segments by id.
func (s *Store) Segments(ctx context.Context) ([]dispatcher.Segment, error) {
	return listJSON[dispatcher.Segment](ctx, s, "segments")
}

// PutCampaign stores c as it is (callers validate and check the state).
func (s *Store) PutCampaign(ctx context.Context, c *dispatcher.Campaign) error {
	c.UpdatedAt = s.now().UTC()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = c.UpdatedAt
	}
	return s.putJSON(ctx, "campaigns", c.ID, c)
}

// Campaign returns a campaign or an error with code not_found.
func (s *Store) Campaign(ctx context.Context, id string) (*dispatcher.Campaign, error) {
	var c dispatcher.Campaign
	return &c, s.getJSON(ctx, "campaigns", id, "campaign", &c)
}

// Campaigns lists the campaigns by id.
func (s *Store) Campaigns(ctx context.Context) ([]dispatcher.Campaign, error) {
	return listJSON[dispatcher.Campaign](ctx, s, "campaigns")
}

// DeriveKey derives a purpose-specific key from the configured secret, so
// that no two uses share a key.
func DeriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("missive/" + purpose))
	return m.Sum(nil)
}

// Preferences returns the contact's current preferences by kind
// (dispatcher.PreferencePause) or kind/topic (frequency/news), with when
// and from where each was set.
func (s *Store) Preferences(ctx context.Context, contact string) (map[string]ConsentCurrent, error) {
	raw, err := s.Redis.HGetAll(ctx, s.prefsKey(contact)).Result()
	if err != nil {
		return nil, err
	}
	return decodeConsents(raw), nil
}
