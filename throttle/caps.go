package throttle

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// CapRule caps how many messages one contact receives on one channel over a
// rolling window.
type CapRule struct {
	// Channel is the channel the rule counts ("email", "sms").
	Channel string
	// Topic limits the rule to one topic; empty counts every topic.
	Topic string
	// MarketingOnly counts marketing sends only: transactional messages
	// neither count nor are held back.
	MarketingOnly bool
	// Limit is the most messages allowed in any Window.
	Limit int
	// Window is the length of the rolling window.
	Window time.Duration
}

// String gives the rule in the syntax ParseCapRules reads.
func (r CapRule) String() string {
	var b strings.Builder
	b.WriteString(r.Channel)
	if r.MarketingOnly {
		b.WriteString(":marketing")
	}
	if r.Topic != "" {
		b.WriteString(":topic=")
		b.WriteString(r.Topic)
	}
	fmt.Fprintf(&b, ":%d/%s", r.Limit, formatWindow(r.Window))
	return b.String()
}

// keySuffix names the sorted set the rule counts in. Rules that count the
// same sends share a set whatever their windows.
func (r CapRule) keySuffix() string {
	s := r.Channel
	if r.MarketingOnly {
		s += ":marketing"
	}
	if r.Topic != "" {
		s += ":topic=" + r.Topic
	}
	return s
}

func (r CapRule) applies(req CapRequest) bool {
	return r.Channel == req.Channel &&
		(r.Topic == "" || r.Topic == req.Topic) &&
		(!r.MarketingOnly || req.Marketing)
}

// Validate reports what is wrong with the rule, if anything.
func (r CapRule) Validate() error {
	if err := checkName("channel", r.Channel); err != nil {
		return err
	}
	if r.Topic != "" {
		if err := checkName("topic", r.Topic); err != nil {
			return err
		}
	}
	if r.Limit < 1 {
		return fmt.Errorf("limit %d: must be at least 1", r.Limit)
	}
	if r.Window < time.Millisecond {
		return fmt.Errorf("window %s: must be at least 1ms", r.Window)
	}
	return nil
}

// checkName keeps channel and topic names out of the characters that mean
// something in our keys, in SCAN patterns or in the rule syntax.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if i := strings.IndexAny(s, ":{}*?[]\\,;/= \t\r\n"); i >= 0 {
		return fmt.Errorf("%s %q: character %q is not allowed", what, s, s[i])
	}
	return nil
}

// ParseCapRules reads rules separated by commas, each
// channel[:marketing][:topic=name]:limit/window, for example
// "email:marketing:2/7d, sms:1/24h, email:topic=promotions:1/1d". A window is
// a Go duration ("24h", "90m") or a count of days ("7d") or weeks ("2w");
// "1/d" reads as "1/1d". An empty string gives no rules.
func ParseCapRules(s string) ([]CapRule, error) {
	var rules []CapRule
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			if strings.TrimSpace(s) == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("throttle: cap rule %d is empty", i+1)
		}
		r, err := parseCapRule(part)
		if err != nil {
			return nil, fmt.Errorf("throttle: cap rule %d %q: %w", i+1, part, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseCapRule(s string) (CapRule, error) {
	fields := strings.Split(s, ":")
	if len(fields) < 2 {
		return CapRule{}, errors.New("want channel[:marketing][:topic=name]:limit/window")
	}
	r := CapRule{Channel: strings.TrimSpace(fields[0])}
	for _, q := range fields[1 : len(fields)-1] {
		q = strings.TrimSpace(q)
		switch {
		case q == "marketing":
			if r.MarketingOnly {
				return CapRule{}, errors.New(`"marketing" given twice`)
			}
			r.MarketingOnly = true
		case strings.HasPrefix(q, "topic="):
			if r.Topic != "" {
				return CapRule{}, errors.New("topic given twice")
			}
			r.Topic = strings.TrimSpace(strings.TrimPrefix(q, "topic="))
			if r.Topic == "" {
				return CapRule{}, errors.New("topic is empty")
			}
		default:
			return CapRule{}, fmt.Errorf(`qualifier %q: want "marketing" or "topic=name"`, q)
		}
	}
	limit, window, ok := strings.Cut(strings.TrimSpace(fields[len(fields)-1]), "/")
	if !ok {
		return CapRule{}, fmt.Errorf("%q: want limit/window, like 2/7d", fields[len(fields)-1])
	}
	n, err := strconv.Atoi(strings.TrimSpace(limit))
	if err != nil || n < 1 {
		return CapRule{}, fmt.Errorf("limit %q: want a whole number of at least 1", limit)
	}
	r.Limit = n
	if r.Window, err = parseWindow(strings.TrimSpace(window)); err != nil {
		return CapRule{}, err
	}
	if err := r.Validate(); err != nil {
		return CapRule{}, err
	}
	return r, nil
}

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// parseWindow reads "7d", "2w", "d", "24h", "90m", "1h30m".
func parseWindow(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("window is empty")
	}
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"d", day}, {"w", week}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			if num == "" {
				return u.d, nil
			}
			n, err := strconv.Atoi(num)
			if err != nil || n < 1 || n > 3660 {
				return 0, fmt.Errorf("window %q: want a whole number of %s, like 7%s", s, map[string]string{"d": "days", "w": "weeks"}[u.suffix], u.suffix)
			}
			return time.Duration(n) * u.d, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("window %q: want a duration like 7d, 24h or 30m", s)
	}
	return d, nil
}

func formatWindow(d time.Duration) string {
	if d >= day && d%day == 0 {
		return strconv.Itoa(int(d/day)) + "d"
	}
	return d.String()
}

// CapRequest asks to count one send against the caps of its contact.
type CapRequest struct {
	// Contact is the contact id. Any string will do.
	Contact string
	// Channel is the send's channel.
	Channel string
	// Topic is the send's topic.
	Topic string
	// SendID identifies the send: reserving it again counts it once.
	SendID string
	// Marketing is true when the topic is a marketing one.
	Marketing bool
}

// Caps enforces frequency caps for all workers at once: each contact's
// reservations live in Redis, and a Lua script checks and records them in one
// atomic step, so concurrent workers never exceed a limit.
//
// Keys are <prefix>:cap:{<contact>}:<channel>[:marketing][:topic=<topic>],
// one sorted set of send ids scored by reservation time (ms) per distinct
// kind of rule. The hash tag keeps all of a contact's keys in one Redis
// Cluster slot, which the script needs.
type Caps struct {
	rdb    redis.UniversalClient
	prefix string
	rules  []CapRule
}

// NewCaps returns Caps that enforce rules on rdb under prefix. Rules should
// have passed Validate (ParseCapRules does it); invalid ones are ignored.
func NewCaps(rdb redis.UniversalClient, prefix string, rules []CapRule) *Caps {
	c := &Caps{rdb: rdb, prefix: prefix}
	for _, r := range rules {
		if r.Validate() == nil {
			c.rules = append(c.rules, r)
		}
	}
	return c
}

// reserveScript checks and records sends against every applicable rule,
// for one or many requests.
//
// ARGV[1] is the number of requests; each request then has its key count
// nk, its argument count na, and na arguments: the send id, now in ms; for
// each key i, the highest score to drop (now - longest window of the key)
// and its TTL in ms; then for each rule a triple: key index, limit, and the
// exclusive lowest score the rule counts ("(" .. now - window). KEYS are
// the requests' keys (one sorted set per distinct key that applies, then
// the contact's index of cap keys), one request after the other: nk counts
// the index, so a request has nk-1 sorted sets. Returns, per request, 1 when the send is
// reserved (now or earlier) and 0 when capped.
//
// On a single Redis one call serves a whole batch; on Redis Cluster, where
// a script's keys must share a slot, each request is a call of its own.
//
// Most contacts have no recent send: an empty set needs no lookup, and a
// set smaller than a rule's limit cannot be over it. Entries older than the
// window are dropped only once a set holds more than a few (trim): rules
// count by score, so old entries never count, and the TTL removes a set
// whose contact got nothing for a whole window.
var reserveScript = redis.NewScript(`
local trim = 16
local out = {}
local k, a = 0, 2
for r = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local index = KEYS[k + nk]
  nk = nk - 1
  local b = a + 1 -- ARGV[b + j] is the request's j-th argument
  local id = ARGV[b + 1]
  local cards = {}
  local held = false
  for i = 1, nk do
    local key = KEYS[k + i]
    local n = redis.call('ZCARD', key)
    if n > trim then
      n = n - redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[b + 1 + 2*i])
    end
    cards[i] = n
    if n > 0 and redis.call('ZSCORE', key, id) then held = true end
  end
  local result = 1
  if not held then
    local j = 3 + 2*nk
    while j <= na do
      local i, limit = tonumber(ARGV[b + j]), tonumber(ARGV[b + j + 1])
      if cards[i] >= limit and redis.call('ZCOUNT', KEYS[k + i], ARGV[b + j + 2], '+inf') >= limit then
        result = 0
        break
      end
      j = j + 3
    end
    if result == 1 then
      local ttl = 0
      for i = 1, nk do
        redis.call('ZADD', KEYS[k + i], ARGV[b + 2], id)
        redis.call('PEXPIRE', KEYS[k + i], ARGV[b + 2 + 2*i])
        redis.call('SADD', index, KEYS[k + i])
        ttl = math.max(ttl, tonumber(ARGV[b + 2 + 2*i]))
      end
      if redis.call('PTTL', index) < ttl then
        redis.call('PEXPIRE', index, ttl)
      end
    end
  end
  out[r] = result
  k = k + nk + 1
  a = a + 2 + na
end
return out
`)

// plan gives the keys and arguments of one request of reserveScript, or ok
// false when no rule applies.
func (c *Caps) plan(now time.Time, req CapRequest) (keys []string, args []any, ok bool) {
	nowMS := now.UnixMilli()
	base := c.contactKey(req.Contact)
	var longest []time.Duration
	var rules []any
	for _, r := range c.rules {
		if !r.applies(req) {
			continue
		}
		k := base + r.keySuffix()
		idx := -1
		for i, have := range keys {
			if have == k {
				idx = i
				break
			}
		}
		if idx < 0 {
			keys = append(keys, k)
			longest = append(longest, 0)
			idx = len(keys) - 1
		}
		longest[idx] = max(longest[idx], r.Window)
		rules = append(rules, idx+1, r.Limit, "("+strconv.FormatInt(nowMS-r.Window.Milliseconds(), 10))
	}
	if len(keys) == 0 {
		return nil, nil, false
	}
	args = make([]any, 0, 2+2*len(keys)+len(rules))
	args = append(args, req.SendID, nowMS)
	for _, w := range longest {
		args = append(args, nowMS-w.Milliseconds(), w.Milliseconds())
	}
	return append(keys, c.indexKey(req.Contact)), append(args, rules...), true
}

// indexKey names the set of every cap key of a contact, so that Forget
// finds them without scanning the keyspace. It lives as long as the
// longest window of its keys. "~" never appears in a rule's suffix.
func (c *Caps) indexKey(contact string) string { return c.contactKey(contact) + "~keys" }

func checkRequest(req CapRequest) error {
	switch {
	case req.Contact == "":
		return errors.New("contact is empty")
	case req.Channel == "":
		return errors.New("channel is empty")
	case req.SendID == "":
		return errors.New("send id is empty")
	}
	return nil
}

// Reserve counts the send against every rule that applies to it and reports
// whether it may go: false means a cap is reached, and nothing was counted.
// Reserving a send id that is already counted returns true and counts
// nothing, so a retried send is not counted twice. A send no rule applies to
// is always allowed, without a Redis call.
func (c *Caps) Reserve(ctx context.Context, now time.Time, req CapRequest) (bool, error) {
	ok, err := c.ReserveMany(ctx, now, []CapRequest{req})
	if err != nil {
		return false, err
	}
	return ok[0], nil
}

// ReserveMany is Reserve for a batch, in one pipelined round trip. Results
// follow the order of reqs, and requests for the same contact are decided in
// that order. On error some requests may have been reserved: since

// contactKey is the start of every cap key of one contact. Braces and the
// escape character are escaped so that a contact id can neither end the hash
// tag early nor share another contact's keys.
func (c *Caps) contactKey(contact string) string {
	return c.prefix + ":cap:{" + escapeContact(contact) + "}:"
}

var contactEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func escapeContact(s string) string { return contactEscaper.Replace(s) }

// perRequest tells whether ReserveMany must call the script once per
// request: on Redis Cluster, where a script's keys share one slot.
var perRequest = func(rdb redis.UniversalClient) bool {
	_, cluster := rdb.(*redis.ClusterClient)
	return cluster
}

// reserveBatch is ReserveMany on a single Redis: one script call for the
// whole batch.
func (c *Caps) reserveBatch(ctx context.Context, now time.Time, reqs []CapRequest, out []bool) error {
	var idx []int
	var keys []string
	args := []any{0}
	for i, req := range reqs {
		if err := checkRequest(req); err != nil {
			return fmt.Errorf("throttle: reserve request %d: %w", i, err)
		}
		k, a, ok := c.plan(now, req)
		if !ok {
			out[i] = true
			continue
		}
		idx = append(idx, i)
		keys = append(keys, k...)
		args = append(args, len(k), len(a))
		args = append(args, a...)
	}
	if len(idx) == 0 {
		return nil
	}
	args[0] = len(idx)
	res, err := reserveScript.Run(ctx, c.rdb, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("throttle: reserve: %w", err)
	}
	for j, i := range idx {
		out[i] = res[j] == 1
	}
	return nil
}

// reservations are idempotent, retry the whole batch.
func (c *Caps) ReserveMany(ctx context.Context, now time.Time, reqs []CapRequest) ([]bool, error) {
	out := make([]bool, len(reqs))
	if !perRequest(c.rdb) {
		return out, c.reserveBatch(ctx, now, reqs, out)
	}
	type call struct {
		i    int
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	calls := make([]call, 0, len(reqs))
	for i, req := range reqs {
		if err := checkRequest(req); err != nil {
			return nil, fmt.Errorf("throttle: reserve request %d: %w", i, err)
		}
		keys, args, ok := c.plan(now, req)
		if !ok {
			out[i] = true
			continue
		}
		calls = append(calls, call{i: i, keys: keys, args: args})
	}
	pending := calls
	for attempt := 0; len(pending) > 0; attempt++ {
		pipe := c.rdb.Pipeline()
		for j := range pending {
			args := append([]any{1, len(pending[j].keys), len(pending[j].args)}, pending[j].args...)
			pending[j].cmd = reserveScript.EvalSha(ctx, pipe, pending[j].keys, args...)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command below
		var again []call
		for _, cl := range pending {
			v, err := cl.cmd.Int64Slice()
			switch {
			case err == nil && len(v) == 1:
				out[cl.i] = v[0] == 1
			case redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0:
				again = append(again, cl) // the script did not run: safe to send again
			default:
				return nil, fmt.Errorf("throttle: reserve: %w", err)
			}
		}
		if len(again) > 0 {
			if err := reserveScript.Load(ctx, c.rdb).Err(); err != nil {
				return nil, fmt.Errorf("throttle: reserve: load script: %w", err)
			}
		}
		pending = again
	}
	return out, nil
}

// Release removes the reservation of sendID, for a reserved send that did
// not go after all (suppressed at the last check, cancelled). Releasing a
// send that is not reserved does nothing.
func (c *Caps) Release(ctx context.Context, contact, channel, topic, sendID string) error {
	base := c.contactKey(contact)
	seen := map[string]bool{}
	pipe := c.rdb.TxPipeline() // one slot: the keys share the contact's hash tag
	for _, r := range c.rules {
		// Whether the send was marketing is not known here: try both.
		if !r.applies(CapRequest{Channel: channel, Topic: topic, Marketing: true}) {
			continue
		}
		k := base + r.keySuffix()
		if !seen[k] {
			seen[k] = true
			pipe.ZRem(ctx, k, sendID)
		}
	}
	if len(seen) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("throttle: release: %w", err)
	}
	return nil
}

// Forget deletes every cap key of contact, for erasure: the keys its index
// names (every rule that counted a send of the contact) and those of the
// rules configured now. Its cost grows with what the contact has, not with
// the keyspace; all the keys share the contact's hash tag.
func (c *Caps) Forget(ctx context.Context, contact string) error {
	index := c.indexKey(contact)
	keys, err := c.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return fmt.Errorf("throttle: forget: %w", err)
	}
	keys = append(keys, index)
	base := c.contactKey(contact)
	for _, r := range c.rules {
		keys = append(keys, base+r.keySuffix())
	}
	if err := c.rdb.Unlink(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("throttle: forget: %w", err)
	}
	return nil
}
