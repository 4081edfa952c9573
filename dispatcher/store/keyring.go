package store

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// Keyring seals and opens personal data at rest with AES-256-GCM under
// named keys. One key is active and seals; every key of the ring opens
// what it sealed, so keys rotate without a stop: add the new key as the
// active one, re-seal the records (Store.RotateData), then drop
// the old key. It is safe for concurrent use.
//
// A sealed value is compact binary:
//
//	"v1" | len(key id) (1 byte) | key id | nonce (12 bytes) | ciphertext and tag
//
// The version, key id and the caller's additional data (the record's key
// name, such as "contact:<id>") are authenticated: a sealed value moved to
// another record, or with any byte changed, does not open.
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD
}

const (
	sealVersion = "v1"
	nonceSize   = 12
	// maxSealHeader is the longest header: version, length, 16-byte id.
	maxSealHeader = len(sealVersion) + 1 + 16
)

var dataKeyID = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

var (
	// ErrUnknownDataKey is returned by Open when the value was sealed under
	// a key the ring does not hold (removed too early, or another ring).
	ErrUnknownDataKey = errors.New("dispatcher: sealed under a data key the keyring does not hold")
	// ErrSealed is returned by Open when the value is malformed or fails
	// authentication (tampered, or moved from another record).
	ErrSealed = errors.New("dispatcher: sealed value does not open")
)

// NewKeyring returns a keyring over keys (by id: 1-16 lower-case letters or
// digits; 32-byte AES-256 keys) that seals under active. Errors name the
// key id, never the key.
func NewKeyring(keys map[string][]byte, active string) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("dispatcher: keyring: no keys")
	}
	k := &Keyring{active: active, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if !dataKeyID.MatchString(id) {
			return nil, fmt.Errorf("dispatcher: keyring: key id %q: want 1-16 lower-case letters or digits", dispatcher.Truncate(id, 16))
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("dispatcher: keyring: key %s: want 32 bytes, got %d", id, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("dispatcher: keyring: key %s: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("dispatcher: keyring: key %s: %w", id, err)
		}
		k.aeads[id] = aead
	}
	if _, ok := k.aeads[active]; !ok {
		return nil, fmt.Errorf("dispatcher: keyring: active key %q is not in the ring", dispatcher.Truncate(active, 16))
	}
	return k, nil
}

// Active returns the id of the key that seals.
func (k *Keyring) Active() string { return k.active }

// IDs returns the ids of the keys of the ring, sorted.
func (k *Keyring) IDs() []string {
	ids := make([]string, 0, len(k.aeads))
	for id := range k.aeads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Seal encrypts plaintext under the active key with a random nonce, bound
// to aad.
func (k *Keyring) Seal(plaintext, aad []byte) []byte {
	aead := k.aeads[k.active]
	hdr := len(sealVersion) + 1 + len(k.active)
	out := make([]byte, hdr+nonceSize, hdr+nonceSize+len(plaintext)+aead.Overhead())
	copy(out, sealVersion)
	out[len(sealVersion)] = byte(len(k.active))
	copy(out[len(sealVersion)+1:], k.active)
	nonce := out[hdr : hdr+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		panic("dispatcher: keyring: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return aead.Seal(out, nonce, plaintext, additional(out[:hdr], aad))
}

// Open decrypts a value made by Seal with the same aad and returns the
// plaintext and the id of the key that sealed it. Returns ErrUnknownDataKey
// (wrapped, naming the key id) if the ring lacks that key, ErrSealed if the
// value is malformed or does not authenticate.
func (k *Keyring) Open(sealed, aad []byte) (plaintext []byte, keyID string, err error) {
	id, hdr, ok := sealHeader(sealed)
	if !ok || len(sealed) < hdr+nonceSize {
		return nil, "", ErrSealed
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, id, fmt.Errorf("%w: %s", ErrUnknownDataKey, id)
	}
	nonce := sealed[hdr : hdr+nonceSize]
	plaintext, err = aead.Open(nil, nonce, sealed[hdr+nonceSize:], additional(sealed[:hdr], aad))
	if err != nil {
		return nil, id, ErrSealed
	}
	return plaintext, id, nil
}

// SealedKeyID returns the id of the key a sealed value names, without
// opening it; ok is false if b is not a sealed value. Its input may be
// just the first bytes of a value (at least maxSealHeader, or all of it).
func SealedKeyID(b []byte) (id string, ok bool) {
	id, _, ok = sealHeader(b)
	return id, ok
}

func sealHeader(b []byte) (id string, n int, ok bool) {
	v := len(sealVersion)
	if len(b) < v+2 || string(b[:v]) != sealVersion {
		return "", 0, false
	}
	l := int(b[v])
	if l == 0 || l > 16 || len(b) < v+1+l {
		return "", 0, false
	}
	return string(b[v+1 : v+1+l]), v + 1 + l, true
}

// additional is what GCM authenticates besides the ciphertext: the header
// (so the version and key id cannot be altered) and the caller's aad.
func additional(hdr, aad []byte) []byte {
	a := make([]byte, 0, len(hdr)+len(aad))
	return append(append(a, hdr...), aad...)
}

// RotateChunk is how many contacts RotateData reads per round trip
// and per checkpoint.
const RotateChunk = 500

// ReSealScript replaces a record only if it still holds the bytes that
// were read: a contact upserted meanwhile is never overwritten with its
// old content. Returns 1 if replaced, 0 if the record changed or is gone.
var ReSealScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
`)

// Rotation counts the records a rotation sealed again.
type Rotation struct {
	Contacts   int64 `json:"contacts"`
	Enrolments int64 `json:"enrolments"`
	Webhooks   int64 `json:"webhooks"`
}

// RotateData seals again, under the active data key, every record sealed
// under another key, while the system runs: the contact records (and
// those stored in plain JSON before encryption), the data their sequence
// enrolments hold, and the webhook endpoints. It walks the contact index
// in chunks of 500, checkpointing its place in P:rotate:cursor, so a run
// stopped by ctx resumes where it stopped; each record is replaced by a
// compare-and-set, so a concurrent write wins. progress, when not nil, is
// called after each chunk with the contacts walked and their total.
// Records that do not open with the keyring are left as they are; the
// walk goes on and the error (wrapping ErrUnknownDataKey or ErrSealed)
// comes back at the end. Processes that still seal with an older key
// write behind the walk: DataKeyUsage tells whether any did.
//
// The data of API sends and the events queued for webhooks are not
// sealed again: they expire with the send retention and
// WebhookEventTTL.
func (s *Store) RotateData(ctx context.Context, progress func(done, total int64)) (Rotation, error) {
	var out Rotation
	index := s.Key("contacts")
	cursor, err := s.Redis.Get(ctx, s.RotateCursorKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return out, fmt.Errorf("rotate: %w", err)
	}
	var done int64
	if cursor != "" {
		if done, err = s.Redis.ZLexCount(ctx, index, "-", "["+cursor).Result(); err != nil {
			return out, fmt.Errorf("rotate: %w", err)
		}
	}
	var unreadable int64
	var firstErr error
	for {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		ids, err := s.ContactIDs(ctx, cursor, RotateChunk)
		if err != nil {
			return out, fmt.Errorf("rotate: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		n, bad, badErr, err := s.reSealContacts(ctx, ids)
		out.Contacts += n
		if err != nil {
			return out, fmt.Errorf("rotate contacts: %w", err)
		}
		unreadable += bad
		firstErr = cmp.Or(firstErr, badErr)
		n, bad, badErr, err = s.reSealEnrolments(ctx, ids)
		out.Enrolments += n
		if err != nil {
			return out, fmt.Errorf("rotate enrolments: %w", err)
		}
		unreadable += bad
		firstErr = cmp.Or(firstErr, badErr)
		cursor = ids[len(ids)-1]
		if err := s.Redis.Set(ctx, s.RotateCursorKey(), cursor, 0).Err(); err != nil {
			return out, fmt.Errorf("rotate: checkpoint: %w", err)
		}
		done += int64(len(ids))
		if progress != nil {
			total, err := s.Redis.ZCard(ctx, index).Result()
			if err != nil {
				return out, fmt.Errorf("rotate: %w", err)
			}
			progress(done, max(total, done))
		}
	}
	n, bad, badErr, err := s.reSealFields(ctx, []string{s.webhooksKey()}, func(_ int, id, v string) (string, error) {
		sealed, err := s.reSeal([]byte(v), webhookAAD(id))
		if err != nil {
			return "", fmt.Errorf("webhook %s: %w", id, err)
		}
		return sealed, nil
	})
	out.Webhooks += n
	if err != nil {
		return out, fmt.Errorf("rotate webhooks: %w", err)
	}
	unreadable += bad
	firstErr = cmp.Or(firstErr, badErr)
	if err := s.Redis.Del(ctx, s.RotateCursorKey()).Err(); err != nil {
		return out, fmt.Errorf("rotate: %w", err)
	}
	if firstErr != nil {
		return out, fmt.Errorf("rotate: %d records do not open and stay as they are (first: %w)", unreadable, firstErr)
	}
	return out, nil
}

// reSeal returns the sealed value sealed again under the active key, or
// "" when the active key sealed it.
func (s *Store) reSeal(sealed []byte, aad []byte) (string, error) {
	if id, ok := SealedKeyID(sealed); ok && id == s.Keys.Active() {
		return "", nil
	}
	js, _, err := s.Keys.Open(sealed, aad)
	if err != nil {
		return "", err
	}
	return string(s.Keys.Seal(js, aad)), nil
}

// reSealEnrolments seals again the data of the enrolments of the contacts
// ids (see reSealFields).
func (s *Store) reSealEnrolments(ctx context.Context, ids []string) (rotated, bad int64, badErr, err error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.enrolmentsKey(id)
	}
	return s.reSealFields(ctx, keys, func(i int, seq, v string) (string, error) {
		var rec enrolmentJSON
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			return "", fmt.Errorf("decode enrolment: %w", err)
		}
		if rec.Sealed == nil {
			return "", nil
		}
		e := dispatcher.Enrolment{Sequence: seq, Contact: ids[i], N: rec.N}
		sealed, err := s.reSeal(rec.Sealed, enrolmentAAD(&e))
		if err != nil {
			return "", fmt.Errorf("enrolment data %s/%d of contact %s: %w", seq, rec.N, ids[i], err)
		}
		if sealed == "" {
			return "", nil
		}
		rec.Sealed = []byte(sealed)
		b, err := json.Marshal(rec)
		return string(b), err
	})
}

// reSealFields seals again the fields of the hashes at keys: reSeal
// returns the new value of field of keys[i], "" to leave it, or an error
// when it does not open. A hash whose field changed between the read and
// the compare-and-set is read again. bad counts the fields that do not
// open, badErr tells why the first one did not.
func (s *Store) reSealFields(ctx context.Context, keys []string, reSeal func(i int, field, v string) (string, error)) (rotated, bad int64, badErr, err error) {
	at := make([]int, len(keys)) // the index in keys of each hash to read
	for i := range at {
		at[i] = i
	}
	for attempt := 0; len(at) > 0; attempt++ {
		if attempt == 10 {
			return rotated, bad, badErr, fmt.Errorf("%d records kept changing during 10 attempts", len(at))
		}
		gets, err := pipelineEach(ctx, s, at, func(p redis.Pipeliner, i int) *redis.MapStringStringCmd {
			return p.HGetAll(ctx, keys[i])
		})
		if err != nil {
			return rotated, bad, badErr, err
		}
		type swap struct {
			i               int
			field, old, new string
		}
		var todo []swap
		for j, g := range gets {
			for field, v := range g.Val() {
				nv, err := reSeal(at[j], field, v)
				if err != nil {
					if attempt == 0 {
						bad++
						badErr = cmp.Or(badErr, err)
					}
					continue
				}
				if nv != "" {
					todo = append(todo, swap{at[j], field, v, nv})
				}
			}
		}
		if len(todo) == 0 {
			break
		}
		set, err := s.compareAndSet(ctx, swapScript, len(todo), func(j int) (string, []any) {
			w := todo[j]
			return keys[w.i], []any{w.field, w.old, w.new}
		})
		at = at[:0:0]
		for j, ok := range set {
			switch {
			case ok:
				rotated++
			case !slices.Contains(at, todo[j].i):
				at = append(at, todo[j].i) // written meanwhile: look again
			}
		}
		if err != nil {
			return rotated, bad, badErr, err
		}
	}
	return rotated, bad, badErr, nil
}

// compareAndSet runs script, a compare-and-set of one key that returns 1
// when it wrote and 0 when the value changed meanwhile, on each of n
// items (call gives item i's key and arguments) in one pipeline. set[i]
// reports whether item i was written; after an error, set holds the
// items before the first that failed.
func (s *Store) compareAndSet(ctx context.Context, script *redis.Script, n int, call func(i int) (key string, args []any)) (set []bool, err error) {
	cmds := make([]*redis.Cmd, n)
	if _, err := s.scriptPipeline(ctx, script, func(p redis.Pipeliner) {
		for i := range cmds {
			key, args := call(i)
			cmds[i] = script.EvalSha(ctx, p, []string{key}, args...)
		}
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	set = make([]bool, 0, n)
	for _, c := range cmds {
		written, err := c.Int64()
		if err != nil {
			return set, err
		}
		set = append(set, written == 1)
	}
	return set, nil
}

// reSealContacts seals again the records of ids that the active key did
// not seal; a record changed between the read and the compare-and-set is
// read again. bad counts the records that do not open, badErr tells why
// the first one did not.
func (s *Store) reSealContacts(ctx context.Context, ids []string) (rotated, bad int64, badErr, err error) {
	active := s.Keys.Active()
	for attempt := 0; len(ids) > 0; attempt++ {
		if attempt == 10 {
			return rotated, bad, badErr, fmt.Errorf("%d contacts kept changing during 10 attempts", len(ids))
		}
		gets, err := pipelineEach(ctx, s, ids, func(p redis.Pipeliner, id string) *redis.StringCmd {
			return p.Get(ctx, s.ContactKey(id))
		})
		if err != nil {
			return rotated, bad, badErr, err
		}
		type reSeal struct {
			id       string
			old, new []byte
		}
		var todo []reSeal
		for i, g := range gets {
			b, err := g.Bytes()
			if errors.Is(err, redis.Nil) {
				continue // erased meanwhile
			}
			if err != nil {
				return rotated, bad, badErr, err
			}
			js, keyID, err := s.OpenContactJSON(ids[i], b)
			if err != nil {
				bad++
				badErr = cmp.Or(badErr, err)
				continue
			}
			if keyID != active {
				todo = append(todo, reSeal{id: ids[i], old: b, new: s.Keys.Seal(js, ContactAAD(ids[i]))})
			}
		}
		if len(todo) == 0 {
			break
		}
		set, err := s.compareAndSet(ctx, ReSealScript, len(todo), func(i int) (string, []any) {
			r := todo[i]
			return s.ContactKey(r.id), []any{r.old, r.new}
		})
		ids = ids[:0:0]
		for i, ok := range set {
			if ok {
				rotated++
			} else {
				ids = append(ids, todo[i].id) // upserted or erased meanwhile: look again
			}
		}
		if err != nil {
			return rotated, bad, badErr, err
		}
	}
	return rotated, bad, badErr, nil
}

// KeyUsage counts the records sealed under the data keys, by the id of
// the key that sealed them: "" counts contact records in plain JSON
// (written before encryption), "?" values that are not sealed. A key of
// the ring that counts nothing may be removed (after the send retention
// and WebhookEventTTL: see RotateData).
type KeyUsage struct {
	Contacts   map[string]int64 `json:"contacts"`
	Enrolments map[string]int64 `json:"enrolments"`
	Webhooks   map[string]int64 `json:"webhooks"`
}

// DataKeyUsage counts the contact records, the enrolments holding data
// and the webhook endpoints by the key that sealed them, reading only each
// contact record's header.
func (s *Store) DataKeyUsage(ctx context.Context) (KeyUsage, error) {
	out := KeyUsage{Contacts: map[string]int64{}, Enrolments: map[string]int64{}, Webhooks: map[string]int64{}}
	count := func(m map[string]int64, b []byte) {
		switch id, ok := SealedKeyID(b); {
		case len(b) == 0: // erased meanwhile
		case ok:
			m[id]++
		case b[0] == '{':
			m[""]++
		default:
			m["?"]++
		}
	}
	after := ""
	for {
		ids, err := s.ContactIDs(ctx, after, 1000)
		if err != nil {
			return out, fmt.Errorf("data key usage: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		heads := make([]*redis.StringCmd, len(ids))
		enrs := make([]*redis.MapStringStringCmd, len(ids))
		if _, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				heads[i] = p.GetRange(ctx, s.ContactKey(id), 0, int64(maxSealHeader-1))
				enrs[i] = p.HGetAll(ctx, s.enrolmentsKey(id))
			}
			return nil
		}); err != nil {
			return out, fmt.Errorf("data key usage: %w", err)
		}
		for i := range ids {
			count(out.Contacts, []byte(heads[i].Val()))
			for _, v := range enrs[i].Val() {
				var rec struct {
					Sealed []byte `json:"sealed"`
				}
				if err := json.Unmarshal([]byte(v), &rec); err != nil {
					out.Enrolments["?"]++
				} else if rec.Sealed != nil {
					count(out.Enrolments, rec.Sealed)
				}
			}
		}
		after = ids[len(ids)-1]
	}
	hooks, err := s.Redis.HGetAll(ctx, s.webhooksKey()).Result()
	if err != nil {
		return out, fmt.Errorf("data key usage: %w", err)
	}
	for _, v := range hooks {
		count(out.Webhooks, []byte(v))
	}
	return out, nil
}

// KeyHolder is what a running process announces of the data keyring it
// holds: the ids of its keys and of the one it seals with, never a key.
// "missive keys rotate" reads the announcements to refuse a rotation that
// processes still sealing with an older key would undo behind its walk.
type KeyHolder struct {
	// Process is a random id the process chose at start.
	Process string `json:"process"`
	// Role names what the process runs (api, worker, scheduler...).
	Role   string   `json:"role"`
	Active string   `json:"active"`
	Keys   []string `json:"keys"`
}

// Holds tells whether the process holds key id and seals with it.
func (h KeyHolder) Holds(id string) bool {
	return h.Active == id && slices.Contains(h.Keys, id)
}

// KeyHolderTTL is how long an announcement outlives its last refresh:
// a process gone without withdrawing (killed) stops counting after it.
const KeyHolderTTL = 30 * time.Second

// AnnounceKeys announces, under P:keyholder:<process> with a TTL of
// KeyHolderTTL, the ids of the keys of s.Keys, for the process named by
// a fresh random id and role, and refreshes the announcement every third
// of the TTL until ctx ends; stop ends it, waits for the refresh to stop
// and withdraws the announcement. It returns an error, and announces
// nothing, if the first announcement cannot be written. A refresh that
// fails is retried at the next tick; logf, when not nil, hears of it.
func (s *Store) AnnounceKeys(ctx context.Context, role string, logf func(err error)) (stop func(), err error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("announce keys: %w", err)
	}
	h := KeyHolder{Process: hex.EncodeToString(b[:]), Role: role, Active: s.Keys.Active(), Keys: s.Keys.IDs()}
	if err := s.announceKeys(ctx, h); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(KeyHolderTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.announceKeys(ctx, h); err != nil && ctx.Err() == nil && logf != nil {
					logf(err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		// The process's context is over by now: withdraw on a short one
		// of its own. Should it fail, the TTL withdraws.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = s.Redis.Pipelined(wctx, func(p redis.Pipeliner) error {
			p.Del(wctx, s.keyHolderKey(h.Process))
			p.SRem(wctx, s.keyHoldersKey(), h.Process)
			return nil
		})
	}, nil
}

func (s *Store) announceKeys(ctx context.Context, h KeyHolder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("announce keys: %w", err)
	}
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.keyHolderKey(h.Process), b, KeyHolderTTL)
		p.SAdd(ctx, s.keyHoldersKey(), h.Process)
		return nil
	})
	if err != nil {
		return fmt.Errorf("announce keys: %w", err)
	}
	return nil
}

// KeyHolders returns the live announcements of AnnounceKeys, by process
// id, and forgets the index entries of processes whose announcement
// expired.
func (s *Store) KeyHolders(ctx context.Context) ([]KeyHolder, error) {
	procs, err := s.Redis.SMembers(ctx, s.keyHoldersKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("key holders: %w", err)
	}
	slices.Sort(procs)
	gets, err := pipelineEach(ctx, s, procs, func(p redis.Pipeliner, proc string) *redis.StringCmd {
		return p.Get(ctx, s.keyHolderKey(proc))
	})
	if err != nil {
		return nil, fmt.Errorf("key holders: %w", err)
	}
	var out []KeyHolder
	var gone []any
	for i, g := range gets {
		b, err := g.Bytes()
		if errors.Is(err, redis.Nil) {
			gone = append(gone, procs[i])
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key holders: %w", err)
		}
		var h KeyHolder
		if err := json.Unmarshal(b, &h); err != nil {
			return nil, fmt.Errorf("key holders: process %s: %w", procs[i], err)
		}
		out = append(out, h)
	}
	if len(gone) > 0 {
		// A refresh may add one back meanwhile: it is then seen next time.
		if err := s.Redis.SRem(ctx, s.keyHoldersKey(), gone...).Err(); err != nil {
			return nil, fmt.Errorf("key holders: %w", err)
		}
	}
	return out, nil
}
