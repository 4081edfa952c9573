package throttle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// Recipient marks a cap the recipient chose (CapRequest.Rules): a send
	// over it is CapRecipient rather than CapOperator.
	Recipient bool
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
	// Rules are the caps the contact chose, counted with the configured
	// ones (for example "at most one a week" of a topic: Channel, Topic,
	// Limit 1, Window 7 days). They should have passed Validate; invalid
	// ones are ignored. Keep them few: each distinct set makes a plan.
	Rules []CapRule
}

// CapVerdict is what reserving one send decided.
type CapVerdict int8

const (
	// CapOperator: a configured cap is reached; nothing was counted.
	CapOperator CapVerdict = 0
	// CapReserved: the send is counted (now or before) and may go.
	CapReserved CapVerdict = 1
	// CapRecipient: a cap the contact chose is reached (and no configured
	// one was); nothing was counted.
	CapRecipient CapVerdict = 2
)

// Caps enforces frequency caps for all workers at once: each contact's
// reservations live in Redis, and a Lua script checks and records them in one
// atomic step, so concurrent workers never exceed a limit.
//
// Keys are <prefix>:cap:{<contact>}:<channel>[:marketing][:topic=<topic>],
// one sorted set of send ids scored by reservation time (ms) per distinct
// kind of rule. The hash tag keeps all of a contact's keys in one Redis
// Cluster slot, which the script needs. The set <prefix>:cap:kinds names
// every kind of rule that ever wrote a key, so that Forget finds all of a
// contact's keys, those of rules since retired too, by name: no index per
// contact to keep up at each reservation, no scan of the keyspace.
type Caps struct {
	rdb    redis.UniversalClient
	prefix string
	rules  []CapRule
	// suffixes are the rules' keySuffix, by rule.
	suffixes []string
	// registered tells that the rules' kinds are in the set of kinds;
	// chosen holds the kinds of the contacts' own rules registered since.
	registered atomic.Bool
	chosen     sync.Map
}

// NewCaps returns Caps that enforce rules on rdb under prefix. Rules should
// have passed Validate (ParseCapRules does it); invalid ones are ignored.
func NewCaps(rdb redis.UniversalClient, prefix string, rules []CapRule) *Caps {
	c := &Caps{rdb: rdb, prefix: prefix}
	for _, r := range rules {
		if r.Validate() == nil {
			c.rules = append(c.rules, r)
			c.suffixes = append(c.suffixes, r.keySuffix())
		}
	}
	return c
}

// reserveScript checks and records sends against every applicable rule,
// for one or many requests.
//
// Requests of the same kind (channel, topic, marketing) share a plan, so
// that what every request of a batch has in common is sent once. ARGV[1]
// is now in ms and ARGV[2] the number of plans; each plan then has its key
// count nk, its rule count nr, for each key the highest score to drop (now
// - longest window of the key) and its TTL in ms, and for each rule a
// triple: key index, limit, and the exclusive lowest score the rule counts
// ("(" .. now - window), and the answer when it is reached (0, or 2 for a
// cap the recipient chose; a plan lists the configured rules first). Then
// come the requests, two arguments each: the
// index of its plan and the send id. KEYS are the requests' keys, the nk
// of its plan, one request after the other. Returns, per request, 1 when
// the send is reserved (now or earlier), else the answer of the first rule
// reached.
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
local now = ARGV[1]
local plans = {}
local a = 3
for p = 1, tonumber(ARGV[2]) do
  local nk, nr = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  plans[p] = {nk, nr, a + 2} -- ARGV[at + 2i - 2], ARGV[at + 2i - 1]: key i's drop score and TTL
  a = a + 2 + 2 * nk + 4 * nr
end
local out = {}
local cards = {}
local k = 0
while a < #ARGV do
  local plan = plans[tonumber(ARGV[a])]
  local id = ARGV[a + 1]
  local nk, nr, at = plan[1], plan[2], plan[3]
  local held, empty = false, true
  for i = 1, nk do
    local key = KEYS[k + i]
    local n = redis.call('ZCARD', key)
    if n > trim then
      n = n - redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[at + 2*i - 2])
    end
    cards[i] = n
    if n > 0 then
      empty = false
      if redis.call('ZSCORE', key, id) then held = true end
    end
  end
  local result = 1
  if not held then
    if not empty then
      local j = at + 2 * nk
      for _ = 1, nr do
        local i, limit = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
        if cards[i] >= limit and redis.call('ZCOUNT', KEYS[k + i], ARGV[j + 2], '+inf') >= limit then
          result = tonumber(ARGV[j + 3])
          break
        end
        j = j + 4
      end
    end
    if result == 1 then
      for i = 1, nk do
        redis.call('ZADD', KEYS[k + i], now, id)
        redis.call('PEXPIRE', KEYS[k + i], ARGV[at + 2*i - 1])
      end
    end
  end
  out[#out + 1] = result
  k = k + nk
  a = a + 2
end
return out
`)

// capPlan is what reserveScript needs of one kind of request at one
// instant: the suffixes of its keys, and its plan's arguments.
type capPlan struct {
	suffixes []string
	args     []any
}

// plan gives the plan of requests of req's kind at now, or nil when no
// rule applies.
func (c *Caps) plan(now time.Time, req CapRequest) *capPlan {
	nowMS := now.UnixMilli()
	var suffixes []string
	var longest []time.Duration
	var rules []any
	add := func(r CapRule, suffix string) {
		idx := slices.Index(suffixes, suffix)
		if idx < 0 {
			suffixes = append(suffixes, suffix)
			longest = append(longest, 0)
			idx = len(suffixes) - 1
		}
		longest[idx] = max(longest[idx], r.Window)
		answer := CapOperator
		if r.Recipient {
			answer = CapRecipient
		}
		rules = append(rules, idx+1, r.Limit, "("+strconv.FormatInt(nowMS-r.Window.Milliseconds(), 10), int(answer))
	}
	for n, r := range c.rules {
		if r.applies(req) {
			add(r, c.suffixes[n])
		}
	}
	for _, r := range req.Rules {
		if r.Validate() == nil && r.applies(req) {
			r.Recipient = true
			add(r, r.keySuffix())
		}
	}
	if len(suffixes) == 0 {
		return nil
	}
	args := make([]any, 0, 2+2*len(suffixes)+len(rules))
	args = append(args, len(suffixes), len(rules)/4)
	for _, w := range longest {
		args = append(args, nowMS-w.Milliseconds(), w.Milliseconds())
	}
	return &capPlan{suffixes: suffixes, args: append(args, rules...)}
}

// planKind is what decides which rules apply to a request.
type planKind struct {
	channel, topic string
	marketing      bool
	rules          string // the request's own rules
}

// planner gives the plans of one call, each made once.
type planner struct {
	c     *Caps
	now   time.Time
	kinds map[planKind]int // index in plans, -1 when no rule applies
	plans []*capPlan
}

// of returns the index in p.plans of req's plan, or -1 when no rule
// applies.
func (p *planner) of(req CapRequest) int {
	k := planKind{req.Channel, req.Topic, req.Marketing, ""}
	for _, r := range req.Rules {
		k.rules += r.String() + ","
	}
	if i, ok := p.kinds[k]; ok {
		return i
	}
	i := -1
	if pl := p.c.plan(p.now, req); pl != nil {
		p.plans = append(p.plans, pl)
		i = len(p.plans) - 1
	}
	if p.kinds == nil {
		p.kinds = map[planKind]int{}
	}
	p.kinds[k] = i
	return i
}

// keys appends the keys of contact under plan pl to keys.
func (c *Caps) keys(keys []string, pl *capPlan, contact string) []string {
	base := c.contactKey(contact)
	for _, s := range pl.suffixes {
		keys = append(keys, base+s)
	}
	return keys
}

// callArgs are the arguments of a script call with plans, before its
// requests' two arguments each.
func callArgs(now time.Time, plans []*capPlan, requests int) []any {
	n := 2 + 2*requests
	for _, pl := range plans {
		n += len(pl.args)
	}
	args := make([]any, 0, n)
	args = append(args, now.UnixMilli(), len(plans))
	for _, pl := range plans {
		args = append(args, pl.args...)
	}
	return args
}

// indexKey names the set of every cap key of a contact that reservations
// kept before the set of kinds existed: Forget still reads it, for the
// keys written then. "~" never appears in a rule's suffix.
func (c *Caps) indexKey(contact string) string { return c.contactKey(contact) + "~keys" }

// kindsKey names the set of the suffixes of every cap key written under
// the prefix. Its members are rule kinds, never contacts.
func (c *Caps) kindsKey() string { return c.prefix + ":cap:kinds" }

// register adds the rules' kinds, and those of the contacts' own rules in
// reqs, to the set of kinds, once per Caps, before any key of theirs is
// written.
func (c *Caps) register(ctx context.Context, reqs []CapRequest) error {
	var members []any
	if !c.registered.Load() {
		for _, s := range c.suffixes {
			members = append(members, s)
		}
	}
	var chosen []string
	for _, req := range reqs {
		for _, r := range req.Rules {
			if s := r.keySuffix(); r.Validate() == nil && !slices.Contains(chosen, s) {
				if _, ok := c.chosen.Load(s); !ok {
					chosen = append(chosen, s)
					members = append(members, s)
				}
			}
		}
	}
	if len(members) == 0 {
		return nil
	}
	if err := c.rdb.SAdd(ctx, c.kindsKey(), members...).Err(); err != nil {
		return fmt.Errorf("throttle: reserve: register rules: %w", err)
	}
	c.registered.Store(true)
	for _, s := range chosen {
		c.chosen.Store(s, true)
	}
	return nil
}

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

// contactKey is the start of every cap key of one contact. Braces and the
// escape character are escaped so that a contact id can neither end the hash
// tag early nor share another contact's keys.
func (c *Caps) contactKey(contact string) string {
	return c.prefix + ":cap:{" + escapeContact(contact) + "}:"
}

var contactEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func escapeContact(s string) string {
	if !strings.ContainsAny(s, "%{}") {
		return s
	}
	return contactEscaper.Replace(s)
}

// perRequest tells whether ReserveMany must call the script once per
// request: on Redis Cluster, where a script's keys share one slot.
var perRequest = func(rdb redis.UniversalClient) bool {
	_, cluster := rdb.(*redis.ClusterClient)
	return cluster
}

// reserveBatch is ReserveMany on a single Redis: one script call for the
// whole batch.
func (c *Caps) reserveBatch(ctx context.Context, now time.Time, reqs []CapRequest, out []CapVerdict) error {
	p := planner{c: c, now: now}
	idx := make([]int, 0, len(reqs))
	plan := make([]int, 0, len(reqs))
	keys := make([]string, 0, len(reqs))
	for i, req := range reqs {
		if err := checkRequest(req); err != nil {
			return fmt.Errorf("throttle: reserve request %d: %w", i, err)
		}
		j := p.of(req)
		if j < 0 {
			out[i] = CapReserved
			continue
		}
		idx = append(idx, i)
		plan = append(plan, j)
		keys = c.keys(keys, p.plans[j], req.Contact)
	}
	if len(idx) == 0 {
		return nil
	}
	if err := c.register(ctx, reqs); err != nil {
		return err
	}
	args := callArgs(now, p.plans, len(idx))
	for n, i := range idx {
		args = append(args, plan[n]+1, reqs[i].SendID)
	}
	res, err := reserveScript.Run(ctx, c.rdb, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("throttle: reserve: %w", err)
	}
	if len(res) != len(idx) {
		return fmt.Errorf("throttle: reserve: %d answers for %d requests", len(res), len(idx))
	}
	for j, i := range idx {
		out[i] = CapVerdict(res[j])
	}
	return nil
}

// ReserveMany is Reserve for a batch, in one pipelined round trip. Results
// follow the order of reqs, and requests for the same contact are decided in
// that order. On error some requests may have been reserved: since
// reservations are idempotent, retry the whole batch.
func (c *Caps) ReserveMany(ctx context.Context, now time.Time, reqs []CapRequest) ([]bool, error) {
	vs, err := c.ReserveEach(ctx, now, reqs)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(vs))
	for i, v := range vs {
		out[i] = v == CapReserved
	}
	return out, nil
}

// ReserveEach is ReserveMany telling, for each send, whose cap held it
// back: CapOperator (a configured cap) or CapRecipient (one of the
// request's Rules), else CapReserved.
func (c *Caps) ReserveEach(ctx context.Context, now time.Time, reqs []CapRequest) ([]CapVerdict, error) {
	out := make([]CapVerdict, len(reqs))
	if !perRequest(c.rdb) {
		return out, c.reserveBatch(ctx, now, reqs, out)
	}
	type call struct {
		i    int
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	p := planner{c: c, now: now}
	calls := make([]call, 0, len(reqs))
	for i, req := range reqs {
		if err := checkRequest(req); err != nil {
			return nil, fmt.Errorf("throttle: reserve request %d: %w", i, err)
		}
		j := p.of(req)
		if j < 0 {
			out[i] = CapReserved
			continue
		}
		pl := p.plans[j]
		args := append(callArgs(now, []*capPlan{pl}, 1), 1, req.SendID)
		calls = append(calls, call{i: i, keys: c.keys(nil, pl, req.Contact), args: args})
	}
	if len(calls) == 0 {
		return out, nil
	}
	if err := c.register(ctx, reqs); err != nil {
		return nil, err
	}
	pending := calls
	for attempt := 0; len(pending) > 0; attempt++ {
		pipe := c.rdb.Pipeline()
		for j := range pending {
			pending[j].cmd = reserveScript.EvalSha(ctx, pipe, pending[j].keys, pending[j].args...)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command below
		var again []call
		for _, cl := range pending {
			v, err := cl.cmd.Int64Slice()
			switch {
			case err == nil && len(v) == 1:
				out[cl.i] = CapVerdict(v[0])
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
// not go after all (suppressed at the last check, cancelled), from the
// configured caps and from those a contact chooses (which count in the
// channel and topic's set). Releasing a send that is not reserved does
// nothing.
func (c *Caps) Release(ctx context.Context, contact, channel, topic, sendID string) error {
	base := c.contactKey(contact)
	seen := map[string]bool{}
	pipe := c.rdb.TxPipeline() // one slot: the keys share the contact's hash tag
	if r := (CapRule{Channel: channel, Topic: topic, Limit: 1, Window: time.Second}); topic != "" && r.Validate() == nil {
		// Whether the contact chose a cap is not known here: remove it
		// anyway, a no-op without one.
		seen[base+r.keySuffix()] = true
		pipe.ZRem(ctx, base+r.keySuffix(), sendID)
	}
	for n, r := range c.rules {
		// Whether the send was marketing is not known here: try both.
		if !r.applies(CapRequest{Channel: channel, Topic: topic, Marketing: true}) {
			continue
		}
		k := base + c.suffixes[n]
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

// Forget deletes every cap key of contact, for erasure: those of every
// kind of rule that ever wrote one (the set of kinds), those of the rules
// configured now, and those an index of the contact's keys names (kept by
// reservations before the set of kinds existed). Its cost grows with the
// kinds of rules, not with the keyspace; the contact's keys share its hash
// tag.
func (c *Caps) Forget(ctx context.Context, contact string) error {
	index := c.indexKey(contact)
	var kinds, indexed *redis.StringSliceCmd
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		kinds = p.SMembers(ctx, c.kindsKey())
		indexed = p.SMembers(ctx, index)
		return nil
	})
	if err != nil {
		return fmt.Errorf("throttle: forget: %w", err)
	}
	base := c.contactKey(contact)
	keys := append(indexed.Val(), index)
	for _, s := range append(kinds.Val(), c.suffixes...) {
		keys = append(keys, base+s)
	}
	slices.Sort(keys)
	if err := c.rdb.Unlink(ctx, slices.Compact(keys)...).Err(); err != nil {
		return fmt.Errorf("throttle: forget: %w", err)
	}
	return nil
}
