package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// decideScript creates the send records of a batch, each once, and counts
// them. All keys carry the run's hash tag, so one script serves a whole
// batch even on Redis Cluster. KEYS: run, inflight, the run's index of
// sends (RunSends lists it), then one send key per send. ARGV: now ms, ttl s, the in-flight wait in ms (a send's deadline is
// that long after now, or after its until), the number of profiles, then
// each profile (what sends of a batch share): channel, topic, template,
// ref; then 6 values per send: id, contact, profile index, state, reason,
// until ms. A send goes into the in-flight set in one ZADD per 200 sends,
// and at the end of the run's index (a list: an append costs less than a
// sorted set's insert, and the positions of what is there never move) in
// one RPUSH per 400 new sends; the index's expiry follows the newest
// send's.
var decideScript = redis.NewScript(`
local counts = {}
local function count(name)
  counts[name] = (counts[name] or 0) + 1
end
local now, ttl, wait = ARGV[1], ARGV[2], tonumber(ARGV[3])
local profiles = {}
local a = 5
for p = 1, tonumber(ARGV[4]) do
  profiles[p] = {ARGV[a], ARGV[a+1], ARGV[a+2], ARGV[a+3]}
  a = a + 4
end
local inflight = {}
local index = {}
for i = 4, #KEYS do
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 0 then
    local id, contact, pr, state, reason, untl = ARGV[a], ARGV[a+1], profiles[tonumber(ARGV[a+2])], ARGV[a+3], ARGV[a+4], ARGV[a+5]
    if reason == '' and untl == '0' and pr[4] == '' then
      redis.call('HSET', key, 'contact', contact, 'channel', pr[1], 'topic', pr[2], 'template', pr[3], 'state', state, 'at', now)
    else
      local f = {'contact', contact, 'channel', pr[1], 'topic', pr[2], 'template', pr[3], 'state', state, 'at', now}
      if reason ~= '' then f[#f+1] = 'reason'; f[#f+1] = reason end
      if untl ~= '0' then f[#f+1] = 'until'; f[#f+1] = untl end
      if pr[4] ~= '' then f[#f+1] = 'ref'; f[#f+1] = pr[4] end
      redis.call('HSET', key, unpack(f))
    end
    redis.call('EXPIRE', key, ttl)
    local outcome = state
    if state == 'suppressed' then outcome = reason end
    index[#index+1] = id
    count('n:planned')
    count('n:' .. outcome)
    count('d:' .. outcome)
    if state == 'queued' or state == 'deferred' then
      local from = now
      if untl ~= '0' then from = untl end
      inflight[#inflight+1] = tonumber(from) + wait
      inflight[#inflight+1] = id
    end
  end
  a = a + 6
end
for j = 1, #inflight, 400 do
  redis.call('ZADD', KEYS[2], unpack(inflight, j, math.min(j + 399, #inflight)))
end
for j = 1, #index, 400 do
  redis.call('RPUSH', KEYS[3], unpack(index, j, math.min(j + 399, #index)))
end
if #index > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
for name, n in pairs(counts) do
  redis.call('HINCRBY', KEYS[1], name, n)
end
return 1
`)

// transitionScript moves sends of one run from one of the allowed states
// to another, in one call, and adds the analytics counts that ride with
// it. KEYS: run, inflight, then one send key per send, then the m hashes
// counted. ARGV: now ms, m, then for each send: send id, allowed states
// (comma separated), new state, reason, in-flight deadline ms (0: leaves
// the set), overdue ms (when not 0, the move happens only if the send's
// in-flight deadline is at or before it: the reconciler acts only on what
// is still overdue), "1" to hold the move while the run is paused or
// cancelled, the number n of field/value pairs to set, then the n pairs
// (the field "attempts" adds one to the send's attempts, whatever its
// value); then for each hash counted: its expiry (unix s), the number n of
// field/increment pairs, then the n pairs, counted whatever became of the
// sends. Returns one reply per send: {1, previous} when done, {0, current}
// when the state was not allowed, {-1} when the send does not exist, {-2,
// run state} when the run holds it. A third element "done", on the last
// send to leave the in-flight set, says the run has nothing left in
// flight and its planning is finished. Counters are added up once per
// call, and the in-flight set changed in one ZADD and one ZREM; the sends
// settled (sent, failed, cancelled, suppressed, bounced) are also counted
// in the call's minute, one HINCRBY per minute and outcome.
var transitionScript = redis.NewScript(`
local counts = {}
local function count(name, n)
  counts[name] = (counts[name] or 0) + n
end
local function outcome(state, reason)
  if state == 'suppressed' then return reason end
  return state
end
-- settled outcomes are also counted per minute (m:<unix minute>:<outcome>),
-- for the console's sends over time
local minute = string.format('%d', math.floor(tonumber(ARGV[1]) / 60000))
local settled = {sent=true, failed=true, cancelled=true, suppressed=true, bounced=true}
local runState
local left = 0
local out = {}
-- the in-flight set's changes, made at the end: id -> deadline, or false
-- when the send leaves the set; the last change of an id wins, as if each
-- were made at once
local moves, moved = {}, {}
local function move(id, deadline)
  if moves[id] == nil then moved[#moved+1] = id end
  moves[id] = deadline
end
local function apply(key, a, nf)
  local cur = redis.call('HMGET', key, 'state', 'reason', 'error_code', 'attempts')
  if not cur[1] then return {-1, ''} end
  if ARGV[a+6] == '1' then
    runState = runState or redis.call('HGET', KEYS[1], 'state') or ''
    if runState == 'paused' or runState == 'cancelled' then return {-2, runState} end
  end
  local allowed = false
  for s in string.gmatch(ARGV[a+1], '[^,]+') do
    if s == cur[1] then allowed = true end
  end
  if not allowed then return {0, cur[1]} end
  if ARGV[a+5] ~= '0' then
    local due = moves[ARGV[a]]
    if due == nil then due = redis.call('ZSCORE', KEYS[2], ARGV[a]) end
    if not due or tonumber(due) > tonumber(ARGV[a+5]) then return {0, cur[1]} end
  end
  local set = {'state', ARGV[a+2], 'reason', ARGV[a+3], 'at', ARGV[1]}
  for i = a + 8, a + 7 + 2 * nf, 2 do
    if ARGV[i] == 'attempts' then
      set[#set+1] = 'attempts'
      set[#set+1] = string.format('%d', (tonumber(cur[4]) or 0) + 1)
    else
      set[#set+1] = ARGV[i]
      set[#set+1] = ARGV[i+1]
    end
  end
  redis.call('HSET', key, unpack(set))
  if ARGV[a+2] == 'sent' and cur[3] then
    redis.call('HDEL', key, 'error_code') -- of an earlier try
  end
  local prev, next = outcome(cur[1], cur[2]), outcome(ARGV[a+2], ARGV[a+3])
  if prev ~= next then
    count('n:' .. prev, -1)
    count('n:' .. next, 1)
    if settled[ARGV[a+2]] then count('m:' .. minute .. ':' .. next, 1) end
  end
  if ARGV[a+4] ~= '0' then
    move(ARGV[a], ARGV[a+4])
  else
    move(ARGV[a], false)
    left = #out + 1
  end
  return {1, cur[1]}
end
local m = tonumber(ARGV[2])
local a = 3
for k = 3, #KEYS - m do
  local nf = tonumber(ARGV[a+7])
  out[#out+1] = apply(KEYS[k], a, nf)
  a = a + 8 + 2 * nf
end
local add, rem = {}, {}
for _, id in ipairs(moved) do
  if moves[id] then
    add[#add+1] = moves[id]
    add[#add+1] = id
  else
    rem[#rem+1] = id
  end
end
if #add > 0 then redis.call('ZADD', KEYS[2], unpack(add)) end
if #rem > 0 then redis.call('ZREM', KEYS[2], unpack(rem)) end
for name, n in pairs(counts) do
  if n ~= 0 then redis.call('HINCRBY', KEYS[1], name, n) end
end
for k = #KEYS - m + 1, #KEYS do
  local n = tonumber(ARGV[a+1])
  for i = a + 2, a + 1 + 2 * n, 2 do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i+1])
  end
  redis.call('EXPIREAT', KEYS[k], ARGV[a])
  a = a + 2 + 2 * n
end
if left > 0 and redis.call('ZCARD', KEYS[2]) == 0 and redis.call('HGET', KEYS[1], 'planned_done') == '1' then
  out[left][3] = 'done'
end
return out
`)

// finishBatchScript marks a batch done once and tells whether the run has
// nothing left to do. KEYS: run, bdone, inflight. ARGV: batch number, or
// "" to check only.
var finishBatchScript = redis.NewScript(`
if ARGV[1] ~= '' and redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'batches_done', 1)
end
local total = redis.call('HGET', KEYS[1], 'batches')
if redis.call('HGET', KEYS[1], 'plan_finished') == '1' and
   tonumber(redis.call('HGET', KEYS[1], 'batches_done') or '0') >= tonumber(total or '0') then
  redis.call('HSET', KEYS[1], 'planned_done', '1')
  if redis.call('ZCARD', KEYS[3]) == 0 then return 1 end
end
return 0
`)

// Decision is the gate's verdict for one contact on one channel.
type Decision struct {
	Send     string
	Contact  string
	Channel  channels.Kind
	Topic    string
	Template string
	State    string // queued, deferred or suppressed
	Reason   string // the gate reason when suppressed
	Until    time.Time
	Ref      string // what the send answers (dispatcher.Send.Ref), or ""
}

// scriptPipeline runs a pipeline of EVALSHA calls of one script, and of
// reads. When Redis does not know the script (after a restart or a SCRIPT
// FLUSH) none of its calls ran: it loads the script and runs the pipeline
// again, reads included.
func (s *Store) scriptPipeline(ctx context.Context, script *redis.Script, fill func(redis.Pipeliner)) ([]redis.Cmder, error) {
	run := func() ([]redis.Cmder, error) {
		return s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
	}
	noScript := func(cmds []redis.Cmder) bool {
		for _, c := range cmds {
			if err := c.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
				return true
			}
		}
		return false
	}
	cmds, err := run()
	if err != nil && noScript(cmds) {
		if err := script.Load(ctx, s.Redis).Err(); err != nil {
			return nil, err
		}
		cmds, err = run()
	}
	return cmds, err
}

// RecordDecisions writes the decisions of a batch, in one script call per
// chunk. Sends decided before (a retried batch) keep their first decision.
func (s *Store) RecordDecisions(ctx context.Context, run string, ds []Decision, queuedDeadline time.Duration) error {
	now := s.now()
	ttl := strconv.Itoa(int(s.sendTTL.Seconds()))
	type profile struct{ channel, topic, template, ref string }
	for len(ds) > 0 {
		chunk := ds[:min(len(ds), 1000)]
		ds = ds[len(chunk):]
		keys := make([]string, 3, len(chunk)+3)
		keys[0], keys[1], keys[2] = s.RunKey(run), s.inflightKey(run), s.runSendsKey(run)
		profiles := map[profile]int{}
		var shared []any
		sends := make([]any, 0, 6*len(chunk))
		for _, d := range chunk {
			p := profile{string(d.Channel), d.Topic, d.Template, d.Ref}
			n, ok := profiles[p]
			if !ok {
				n = len(profiles) + 1
				profiles[p] = n
				shared = append(shared, p.channel, p.topic, p.template, p.ref)
			}
			var until int64
			if !d.Until.IsZero() {
				until = ms(d.Until)
			}
			keys = append(keys, s.SendKey(d.Send))
			sends = append(sends, d.Send, d.Contact, n, d.State, d.Reason, until)
		}
		args := make([]any, 0, 4+len(shared)+len(sends))
		args = append(args, ms(now), ttl, queuedDeadline.Milliseconds(), len(profiles))
		args = append(append(args, shared...), sends...)
		if err := decideScript.Run(ctx, s.Redis, keys, args...).Err(); err != nil {
			return err
		}
	}
	return nil
}

// Transition is one requested change of a send's state.
type Transition struct {
	Send     string
	From     string // comma separated allowed states
	To       string
	Reason   string
	Deadline time.Time // zero: the send leaves the in-flight set
	// Overdue, when set, applies the change only if the send's in-flight
	// deadline is at or before it.
	Overdue time.Time
	// UnlessHeld makes no change while the send's run is paused or
	// cancelled: a claim checks the run's state at the instant it is
	// taken, so that a pause holds from its answer on.
	UnlessHeld bool
	Fields     []any
	// ProviderID, when set, is recorded as naming the send (SetProviderIDs)
	// before the change is made.
	ProviderID string
}

type transitionResult struct {
	Applied bool
	// Held is the state of the run that held the change (paused or
	// cancelled), with UnlessHeld.
	Held    string
	RunDone bool
}

// TransitionSends applies changes in one round trip: one script call per
// run and chunk of transitionChunk sends. A transition with a ProviderID
// records it first (SetProviderIDs). The events evs are counted in the
// analytics in the same round trip, whether or not the changes apply:
// they are facts the caller knows (a message left), not states. The
// counts of a run's events ride the run's first script call, and so do
// those of their topic's day on a single Redis (on Redis Cluster the day
// lives in a slot of its own and has a script call of its own).
func (s *Store) TransitionSends(ctx context.Context, ts []Transition, evs ...Event) ([]transitionResult, error) {
	ids := map[string]string{}
	for _, t := range ts {
		if t.ProviderID != "" {
			ids[t.ProviderID] = t.Send
		}
	}
	clustered := IsCluster(s.Redis)
	if len(ids) > 0 && clustered {
		// A cluster pipeline runs on several nodes at once: the ids must be
		// in place before the sends show as sent.
		if err := s.SetProviderIDs(ctx, ids); err != nil {
			return nil, err
		}
	}
	now := s.now()
	var ec *eventCounts
	var riding map[string][]*countKey // by run, the counts its first call adds
	skip := map[*countKey]bool{}
	if len(evs) > 0 {
		ec = s.tally(evs)
		runs := map[string]bool{}
		for _, t := range ts {
			run, _, _ := dispatcher.SplitSendID(t.Send)
			runs[run] = true
		}
		riding = map[string][]*countKey{}
		var first string // a run of ts, whose call takes the topics' days
		for _, t := range ts {
			first, _, _ = dispatcher.SplitSendID(t.Send)
			break
		}
		for _, m := range ec.keys {
			switch {
			case m.run != "" && runs[m.run]:
				riding[m.run] = append(riding[m.run], m)
			case m.run == "" && !clustered && first != "":
				riding[first] = append(riding[first], m)
			default:
				continue
			}
			skip[m] = true
		}
	}
	var calls []transitionCall
	counted := false
	_, err := s.scriptPipeline(ctx, transitionScript, func(p redis.Pipeliner) {
		if !clustered {
			s.setProviderIDs(ctx, p, ids)
		}
		calls = s.evalTransitions(ctx, p, ts, now, riding)
		// The counts of their own script calls are queued once: a pipeline
		// run again because Redis forgot the transition script ran them
		// the first time (and none of those riding the transitions).
		if ec != nil && !counted {
			s.queueCounts(ctx, p, ec, skip)
			counted = true
		}
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("transition sends: %w", err)
	}
	out := make([]transitionResult, len(ts))
	for _, c := range calls {
		if err := c.parse(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// transitionChunk bounds the sends of one script call, which blocks Redis
// while it runs.
const transitionChunk = 200

// transitionCall is one call of transitionScript: the transitions of one
// run, at their index in the caller's list.
type transitionCall struct {
	cmd *redis.Cmd
	idx []int
}

// parse writes the call's results into out.
func (c transitionCall) parse(out []transitionResult) error {
	vals, err := c.cmd.Slice()
	if err != nil || len(vals) != len(c.idx) {
		return fmt.Errorf("transition sends: %v", err)
	}
	for j, v := range vals {
		r, ok := v.([]any)
		if !ok || len(r) < 2 {
			return fmt.Errorf("transition sends: unexpected reply %v", v)
		}
		out[c.idx[j]] = parseTransition(r)
	}
	return nil
}

// evalTransitions queues the script calls of ts on p, run by run; the
// first call of a run adds the counts counts[run].
func (s *Store) evalTransitions(ctx context.Context, p redis.Pipeliner, ts []Transition, now time.Time, counts map[string][]*countKey) []transitionCall {
	byRun := map[string][]int{}
	var runs []string
	for i, t := range ts {
		run, _, _ := dispatcher.SplitSendID(t.Send)
		if _, ok := byRun[run]; !ok {
			runs = append(runs, run)
		}
		byRun[run] = append(byRun[run], i)
	}
	var calls []transitionCall
	for _, run := range runs {
		idx := byRun[run]
		riding := counts[run]
		for len(idx) > 0 {
			chunk := idx[:min(len(idx), transitionChunk)]
			idx = idx[len(chunk):]
			keys := make([]string, 2, 2+len(chunk)+len(riding))
			keys[0], keys[1] = s.RunKey(run), s.inflightKey(run)
			args := make([]any, 2, 2+9*len(chunk))
			args[0], args[1] = ms(now), len(riding)
			for _, i := range chunk {
				t := ts[i]
				var deadline, overdue int64
				if !t.Deadline.IsZero() {
					deadline = ms(t.Deadline)
				}
				if !t.Overdue.IsZero() {
					overdue = ms(t.Overdue)
				}
				hold := "0"
				if t.UnlessHeld {
					hold = "1"
				}
				keys = append(keys, s.SendKey(t.Send))
				args = append(args, t.Send, t.From, t.To, t.Reason, deadline, overdue, hold, len(t.Fields)/2)
				args = append(args, t.Fields...)
			}
			for _, m := range riding {
				keys = append(keys, m.key)
				fields := m.args()
				args = append(args, fields[0], len(fields)/2)
				args = append(args, fields[1:]...)
			}
			riding = nil
			calls = append(calls, transitionCall{cmd: transitionScript.EvalSha(ctx, p, keys, args...), idx: chunk})
		}
	}
	return calls
}

func parseTransition(vals []any) transitionResult {
	code, _ := vals[0].(int64)
	r := transitionResult{Applied: code == 1, RunDone: len(vals) > 2}
	if code == -2 {
		r.Held, _ = vals[1].(string)
	}
	return r
}

// TransitionSend is TransitionSends for one send.
func (s *Store) TransitionSend(ctx context.Context, t Transition) (transitionResult, error) {
	rs, err := s.TransitionSends(ctx, []Transition{t})
	if err != nil {
		return transitionResult{}, err
	}
	return rs[0], nil
}

// Sends loads send records in one pipeline; missing ones are nil.
func (s *Store) Sends(ctx context.Context, ids []string) ([]*dispatcher.Send, error) {
	cmds, err := pipelineEach(ctx, s, ids, func(p redis.Pipeliner, id string) *redis.MapStringStringCmd {
		return p.HGetAll(ctx, s.SendKey(id))
	})
	if err != nil {
		return nil, err
	}
	out := make([]*dispatcher.Send, len(ids))
	for i, cmd := range cmds {
		m := cmd.Val()
		if len(m) == 0 {
			continue
		}
		out[i] = sendFromHash(ids[i], m)
	}
	return out, nil
}

func sendFromHash(id string, m map[string]string) *dispatcher.Send {
	run, _, _ := dispatcher.SplitSendID(id)
	sd := &dispatcher.Send{
		ID: id, Run: run, Contact: m["contact"], Channel: channels.Kind(m["channel"]),
		Topic: m["topic"], Template: m["template"], Ref: m["ref"], State: m["state"], Reason: m["reason"],
		Provider: m["provider"], ErrorCode: m["error_code"],
	}
	if v := m[sendDataField]; v != "" {
		sd.Data = []byte(v)
	}
	sd.Attempts, _ = strconv.Atoi(m["attempts"])
	if v, _ := strconv.ParseInt(m["until"], 10, 64); v > 0 {
		sd.Until = time.UnixMilli(v).UTC()
	}
	if v, _ := strconv.ParseInt(m["at"], 10, 64); v > 0 {
		sd.UpdatedAt = time.UnixMilli(v).UTC()
	}
	return sd
}

// Send returns one send record or an error with code not_found.
func (s *Store) Send(ctx context.Context, id string) (*dispatcher.Send, error) {
	sd, _, err := s.SendAndDomain(ctx, id)
	return sd, err
}

// SendAndDomain is Send, with the ProviderGroup of the send's recipient
// recorded when its message left ("" before, and for SMS).
func (s *Store) SendAndDomain(ctx context.Context, id string) (*dispatcher.Send, string, error) {
	if _, _, ok := dispatcher.SplitSendID(id); !ok {
		return nil, "", dispatcher.NotFound("send")
	}
	m, err := s.Redis.HGetAll(ctx, s.SendKey(id)).Result()
	if err != nil {
		return nil, "", err
	}
	if len(m) == 0 {
		return nil, "", dispatcher.NotFound("send")
	}
	return sendFromHash(id, m), m[SendDomainField], nil
}

// createRunScript writes a run's record once, all of it at once, and
// tells whether the run is indexed (the field indexed). KEYS: run. ARGV:
// campaign, state, fire_at ms, created ms. Returns {1 if created, state,
// indexed}.
var createRunScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], 'campaign', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'fire_at', ARGV[3], 'created', ARGV[4])
  return {1, ARGV[2], ''}
end
local v = redis.call('HMGET', KEYS[1], 'state', 'indexed')
return {0, v[1] or '', v[2] or ''}
`)

// CreateRun creates the run record once; it reports whether it was new.
// A call for a run that exists finishes what a crash may have left of
// its creation.
//
// The record lives in the run's slot, the campaign's list of runs and the
// set of active runs in slots of their own, so on Redis Cluster no one
// transaction spans them. The creation is therefore steps, each on one
// slot and each safe to repeat: the record (one script), then the two
// indexes (ZADD and SADD change nothing the second time), then the
// record's field indexed, which says the steps before it are done. A
// crash in between leaves a record without indexed, and the next call
// for the run, such as a start repeated with its key, does the rest. The
// record goes first so that no reader ever finds an indexed run without
// its record.
func (s *Store) CreateRun(ctx context.Context, r *dispatcher.Run) (bool, error) {
	vals, err := createRunScript.Run(ctx, s.Redis, []string{s.RunKey(r.ID)},
		r.Campaign, r.State, ms(r.FireAt), ms(s.now())).Slice()
	if err != nil {
		return false, fmt.Errorf("create run: %w", err)
	}
	created := vals[0] == int64(1)
	if indexed, _ := vals[2].(string); indexed == "1" {
		return created, nil
	}
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.Key("runs", r.Campaign), redis.Z{Score: float64(ms(r.FireAt)), Member: r.ID})
		p.SAdd(ctx, s.Key("runs", "active"), r.ID)
		return nil
	})
	if err != nil {
		return created, fmt.Errorf("create run: index: %w", err)
	}
	// A run that finished meanwhile (a repeated call for an old run) must
	// not stay active. SetRunState writes the state before it removes the
	// run from the set, and this reads the state after the SADD: one of
	// the two removes it.
	state, err := s.RunField(ctx, r.ID, "state")
	if err != nil {
		return created, fmt.Errorf("create run: %w", err)
	}
	if finished(state) {
		if err := s.Redis.SRem(ctx, s.Key("runs", "active"), r.ID).Err(); err != nil {
			return created, fmt.Errorf("create run: %w", err)
		}
	}
	if err := s.Redis.HSet(ctx, s.RunKey(r.ID), "indexed", 1).Err(); err != nil {
		return created, fmt.Errorf("create run: %w", err)
	}
	return created, nil
}

// finished tells whether a run in state has ended for good.
func finished(state string) bool {
	return state == dispatcher.RunCompleted || state == dispatcher.RunCancelled
}

// Run returns a run with its counters, or an error with code not_found.
func (s *Store) Run(ctx context.Context, id string) (*dispatcher.Run, error) {
	m, err := s.Redis.HGetAll(ctx, s.RunKey(id)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, dispatcher.NotFound("run")
	}
	r := &dispatcher.Run{ID: id, Campaign: m["campaign"], State: m["state"], Counters: map[string]int64{}, Feedback: RunFeedback(m),
		PausedReason: m["paused_reason"]}
	if v, _ := strconv.ParseInt(m["fire_at"], 10, 64); v > 0 {
		r.FireAt = time.UnixMilli(v).UTC()
	}
	if v, _ := strconv.ParseInt(m["created"], 10, 64); v > 0 {
		r.Created = time.UnixMilli(v).UTC()
	}
	if v, _ := strconv.ParseInt(m["finished"], 10, 64); v > 0 {
		r.Finished = time.UnixMilli(v).UTC()
	}
	var sum int64
	for f, v := range m {
		name, ok := strings.CutPrefix(f, "n:")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		if n == 0 {
			continue
		}
		r.Counters[name] = n
		if name != "planned" {
			sum += n
		}
	}
	r.Balanced = sum == r.Counters["planned"]
	return r, nil
}

// Decisions returns what the gate decided for the run, per reason.
func (s *Store) Decisions(ctx context.Context, run string) (map[string]int64, error) {
	m, err := s.Redis.HGetAll(ctx, s.RunKey(run)).Result()
	if err != nil {
		return nil, err
	}
	return counters(m, "d:"), nil
}

// Runs lists a campaign's run ids, newest first.
func (s *Store) Runs(ctx context.Context, campaign string) ([]string, error) {
	return s.Redis.ZRevRange(ctx, s.Key("runs", campaign), 0, 99).Result()
}

// RunField returns one field of a run's record, "" when unset.
func (s *Store) RunField(ctx context.Context, run, field string) (string, error) {
	v, err := s.Redis.HGet(ctx, s.RunKey(run), field).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// RunValues returns fields of a run's record, "" for those unset.
func (s *Store) RunValues(ctx context.Context, run string, fields ...string) ([]string, error) {
	vals, err := s.Redis.HMGet(ctx, s.RunKey(run), fields...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

// SetRunState sets the state of a run, and keeps the set of active runs.
//
// The record and the set live in different slots on Redis Cluster, so
// these are two steps: the state first, then the set. Both are safe to
// repeat, and a crash between them leaves a finished run in the set,
// which ActiveRuns removes when it meets it.
func (s *Store) SetRunState(ctx context.Context, run, state string) error {
	fields := []any{"state", state}
	if finished(state) {
		fields = append(fields, "finished", ms(s.now()))
	}
	if err := s.Redis.HSet(ctx, s.RunKey(run), fields...).Err(); err != nil {
		return fmt.Errorf("set run state: %w", err)
	}
	if finished(state) {
		if err := s.Redis.SRem(ctx, s.Key("runs", "active"), run).Err(); err != nil {
			return fmt.Errorf("set run state: %w", err)
		}
	}
	return nil
}

// ActiveRuns lists the runs not yet finished. A finished run still in the
// set (SetRunState cut short) is left out and removed from it.
func (s *Store) ActiveRuns(ctx context.Context) ([]string, error) {
	key := s.Key("runs", "active")
	ids, err := s.Redis.SMembers(ctx, key).Result()
	if err != nil || len(ids) == 0 {
		return ids, err
	}
	states, err := s.runStates(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := ids[:0]
	var done []any
	for i, st := range states {
		if finished(st) {
			done = append(done, ids[i])
			continue
		}
		out = append(out, ids[i])
	}
	if len(done) > 0 {
		if err := s.Redis.SRem(ctx, key, done...).Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// runStates reads the state of each run in one pipeline ("" for a run
// that does not exist).
func (s *Store) runStates(ctx context.Context, ids []string) ([]string, error) {
	cmds, err := pipelineEach(ctx, s, ids, func(p redis.Pipeliner, id string) *redis.StringCmd {
		return p.HGet(ctx, s.RunKey(id), "state")
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// Overdue returns up to n sends of run whose in-flight deadline passed.
func (s *Store) Overdue(ctx context.Context, run string, n int64) ([]string, error) {
	return s.Redis.ZRangeByScore(ctx, s.inflightKey(run), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(ms(s.now()), 10), Count: n,
	}).Result()
}

// InflightSends returns up to n of run's sends still in flight.
func (s *Store) InflightSends(ctx context.Context, run string, n int64) ([]string, error) {
	return s.Redis.ZRange(ctx, s.inflightKey(run), 0, n-1).Result()
}

// RunMinute is what a run's sends settled in one minute, by outcome (sent,
// failed, cancelled, or the gate reason of a send stopped at its re-check).
type RunMinute struct {
	At       time.Time
	Outcomes map[string]int64
}

// RunMinutes returns what the run's sends settled, minute by minute,
// oldest first; minutes when nothing settled are left out.
func (s *Store) RunMinutes(ctx context.Context, run string) ([]RunMinute, error) {
	m, err := s.Redis.HGetAll(ctx, s.RunKey(run)).Result()
	if err != nil {
		return nil, fmt.Errorf("run minutes: %w", err)
	}
	byMinute := map[int64]map[string]int64{}
	for f, v := range m {
		rest, ok := strings.CutPrefix(f, "m:")
		if !ok {
			continue
		}
		minute, outcome, ok := strings.Cut(rest, ":")
		at, err := strconv.ParseInt(minute, 10, 64)
		if !ok || err != nil {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		if byMinute[at] == nil {
			byMinute[at] = map[string]int64{}
		}
		byMinute[at][outcome] += n
	}
	out := make([]RunMinute, 0, len(byMinute))
	for at, counts := range byMinute {
		out = append(out, RunMinute{At: time.Unix(at*60, 0).UTC(), Outcomes: counts})
	}
	slices.SortFunc(out, func(a, b RunMinute) int { return a.At.Compare(b.At) })
	return out, nil
}

// InflightByDeadline counts the in-flight sends of run by deadline, in
// one round trip: out[0] those due at or before from, out[i] for i in
// 1..n those due in (from+(i-1)*step, from+i*step], out[n+1] those due
// later.
func (s *Store) InflightByDeadline(ctx context.Context, run string, from time.Time, step time.Duration, n int) ([]int64, error) {
	key := s.inflightKey(run)
	cmds := make([]*redis.IntCmd, n+2)
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		lo := "-inf"
		for i := range n + 1 {
			hi := strconv.FormatInt(ms(from.Add(time.Duration(i)*step)), 10)
			cmds[i] = p.ZCount(ctx, key, lo, hi)
			lo = "(" + hi
		}
		cmds[n+1] = p.ZCount(ctx, key, lo, "+inf")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("in-flight by deadline: %w", err)
	}
	out := make([]int64, len(cmds))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
