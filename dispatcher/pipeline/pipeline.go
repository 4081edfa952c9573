package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/missive-dev/missive/dispatcher"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// Task types. Payloads carry ids only: never an address, a number or a
// rendered body.
const (
	TypePlan  = "missive:plan"
	TypeBatch = "missive:batch"
	TypeSend  = "missive:send"
)

type planPayload struct {
	Run string `json:"run"`
}

// batchPayload names a slice of the audience: contact ids in the lex range
// (From, To] of the contact index ("" is open), or, for a static segment,
// entries [Offset, Offset+Count) of its list.
type batchPayload struct {
	Run    string `json:"run"`
	N      int    `json:"n"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Offset int    `json:"offset,omitempty"`
	Count  int    `json:"count,omitempty"`
}

type sendPayload struct {
	Run   string   `json:"run"`
	Sends []string `json:"sends"` // the hash part of each send id
}

// Queue is the full name of the queue called name, under the prefix.
func (d *Pipeline) Queue(name string) string { return d.cfg.Prefix + ":" + name }

func (d *Pipeline) sendQueue(key string) string {
	if d.cfg.SendQueues <= 1 {
		return d.Queue("send")
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return d.Queue("send:" + strconv.Itoa(int(h.Sum32()%uint32(d.cfg.SendQueues))))
}

// Queues returns the queues a worker serves, with their priorities: sends
// first, so that a large plan does not starve delivery.
func (d *Pipeline) Queues() map[string]int {
	q := map[string]int{d.Queue("plan"): 1, d.Queue("batch"): 3, d.Queue("webhook"): 2}
	if d.cfg.SendQueues <= 1 {
		q[d.Queue("send")] = 6
	} else {
		for i := range d.cfg.SendQueues {
			q[d.Queue("send:"+strconv.Itoa(i))] = 6
		}
	}
	return q
}

// enqueue adds a task; a conflict with an existing task id is success: the
// work is already queued.
func (d *Pipeline) enqueue(ctx context.Context, typ string, payload any, opts ...asynq.Option) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	opts = append(opts, asynq.MaxRetry(d.cfg.MaxRetry))
	_, err = d.client.EnqueueContext(ctx, asynq.NewTask(typ, b), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	return nil
}

// decodePayload reads the payload of task t, of type op; a payload that
// does not decode is not retried.
func decodePayload[P any](t *asynq.Task, op string) (P, error) {
	var p P
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("%s: %v: %w", op, err, asynq.SkipRetry)
	}
	return p, nil
}

// firstBatch is the size of a run's first batch at most.
const firstBatch = 50

// handlePlan cuts a run's contacts into batches and enqueues them. When
// this worker serves the batch queue (served), it gates the first batch
// itself before the others are enqueued: the first messages then leave
// without waiting for the queue, nor for a CPU busy with the other
// batches.
func (d *Pipeline) handlePlan(ctx context.Context, t *asynq.Task, served map[string]int) error {
	p, err := decodePayload[planPayload](t, "plan")
	if err != nil {
		return err
	}
	st, err := d.LoadRun(ctx, p.Run)
	if err != nil {
		return err
	}
	if st.state == dispatcher.RunCancelled || st.state == dispatcher.RunCompleted {
		return nil
	}
	if wait, err := d.earlierPlanning(ctx, st); err != nil || wait {
		if wait {
			return &snoozeError{d: time.Second}
		}
		return err
	}
	if st.state == dispatcher.RunPlanning {
		if err := d.Store.SetRunState(ctx, p.Run, dispatcher.RunSending); err != nil {
			return err
		}
	}
	pc, err := d.Store.PlanCursor(ctx, p.Run)
	if err != nil {
		return err
	}
	if pc.Finished {
		return nil
	}
	cursor, n := pc.After, pc.Batches
	for {
		size := d.cfg.BatchSize
		if n == 0 {
			// A small first batch: the first messages leave while the
			// rest is gated.
			size = min(size, firstBatch)
		}
		if err := ctx.Err(); err != nil {
			return err // the cursor is saved: the retry goes on from there
		}
		if n%50 == 49 {
			if state, err := d.Store.RunField(ctx, p.Run, "state"); err != nil || state == dispatcher.RunCancelled {
				return err
			}
		}
		bp := batchPayload{Run: p.Run, N: n}
		next := cursor
		if st.segment.Contacts != nil {
			off, _ := strconv.Atoi(cmp.Or(cursor, "0"))
			if off >= len(st.segment.Contacts) {
				break
			}
			bp.Offset, bp.Count = off, min(size, len(st.segment.Contacts)-off)
			next = strconv.Itoa(off + bp.Count)
		} else {
			// A full batch ends at its last id; a short one is the last
			// batch and stays open, taking the contacts added meanwhile.
			ids, err := d.Store.ContactIDs(ctx, cursor, int64(size))
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			bp.From = cursor
			if len(ids) == size {
				bp.To, next = ids[size-1], ids[size-1]
			}
		}
		if n > 0 || served[d.Queue("batch")] == 0 || d.batchTask(ctx, bp, served) != nil {
			if err := d.enqueue(ctx, TypeBatch, bp, asynq.Queue(d.Queue("batch")), asynq.TaskID(p.Run+"~b"+strconv.Itoa(n))); err != nil {
				return err
			}
		}
		n++
		if err := d.Store.SavePlanCursor(ctx, p.Run, next, n); err != nil {
			return err
		}
		if bp.To == "" && st.segment.Contacts == nil {
			break // the last, open-ended batch
		}
		cursor = next
	}
	if err := d.Store.FinishPlan(ctx, p.Run, n); err != nil {
		return err
	}
	return d.FinishBatch(ctx, p.Run, "")
}

// earlierPlanning reports whether an earlier run of a one-shot campaign
// is still deciding for its contacts. A run waits for them to be decided
// before deciding itself, so that it sees every contact they reach, even
// when two runs start together.
func (d *Pipeline) earlierPlanning(ctx context.Context, st *runState) (bool, error) {
	for _, r := range st.earlier {
		m, err := d.Store.RunValues(ctx, r, "state", "planned_done")
		if err != nil {
			return false, err
		}
		if m[0] != dispatcher.RunCompleted && m[0] != dispatcher.RunCancelled && m[1] != "1" {
			return true, nil
		}
	}
	return false, nil
}

// FinishBatch marks batch n done ("" only checks) and completes the run
// when nothing is left.
func (d *Pipeline) FinishBatch(ctx context.Context, run, n string) error {
	done, err := d.Store.FinishBatch(ctx, run, n)
	if err != nil {
		return fmt.Errorf("finish batch: %w", err)
	}
	if done {
		return d.CompleteRun(ctx, run)
	}
	return nil
}

// CompleteRun marks a run completed, after settling its campaign when no
// other run of it holds work (a cron campaign goes back to scheduled): a
// run is seen completed only once its campaign says so. A crash in
// between, or two runs completing at once, leave what the reconciler
// finishes (Reconcile).
func (d *Pipeline) CompleteRun(ctx context.Context, run string) error {
	st, err := d.Store.RunField(ctx, run, "state")
	if err != nil || st == dispatcher.RunCompleted || st == dispatcher.RunCancelled {
		return err
	}
	campaign, err := d.Store.RunField(ctx, run, "campaign")
	if err != nil {
		return err
	}
	if campaign != "" && !dispatcher.OneAtATime(campaign) {
		if err := d.settleCampaign(ctx, campaign, run); err != nil {
			return err
		}
	}
	if err := d.Store.SetRunState(ctx, run, dispatcher.RunCompleted); err != nil {
		return err
	}
	d.log.Info("run completed", "run", run)
	return nil
}

// handleBatch gates the contacts of a batch and enqueues what passed. A
// run's first batch delivers its first sends itself when this worker
// serves their queue (served): each hop through the queue waits for a
// worker's next look.
func (d *Pipeline) handleBatch(ctx context.Context, t *asynq.Task, served map[string]int) error {
	p, err := decodePayload[batchPayload](t, "batch")
	if err != nil {
		return err
	}
	return d.batchTask(ctx, p, served)
}

// batchTask is handleBatch's work, for the plan's inline first batch too.
func (d *Pipeline) batchTask(ctx context.Context, p batchPayload, served map[string]int) error {
	if p.N > 0 {
		served = nil
	}
	st, err := d.LoadRun(ctx, p.Run)
	if err != nil {
		return err
	}
	if st.state == dispatcher.RunCancelled {
		return d.FinishBatch(ctx, p.Run, strconv.Itoa(p.N))
	}
	var ids []string
	if st.segment.Contacts != nil {
		end := min(p.Offset+p.Count, len(st.segment.Contacts))
		if p.Offset < end {
			ids = st.segment.Contacts[p.Offset:end]
		}
	} else {
		if ids, err = d.batchContactIDs(ctx, p.From, p.To); err != nil {
			return err
		}
	}
	// A batch seen before (a retry, or a rerun after a shutdown) may have
	// decided some of its sends already: only then are they looked up.
	first, err := d.Store.SeeBatch(ctx, p.Run, p.N)
	if err != nil {
		return err
	}
	if err := d.gateBatch(ctx, st, ids, !first, served); err != nil {
		return err
	}
	return d.FinishBatch(ctx, p.Run, strconv.Itoa(p.N))
}

// batchContactIDs returns the contact ids in the lex range (from, to] of
// the contact list ("" is open), through the store's one walk over it. A
// batch holds BatchSize ids when planned, more if contacts were added in
// its range since: it is read in pages of that size.
func (d *Pipeline) batchContactIDs(ctx context.Context, from, to string) ([]string, error) {
	var ids []string
	for after := from; ; {
		page, err := d.Store.ContactIDs(ctx, after, int64(d.cfg.BatchSize))
		if err != nil {
			return nil, err
		}
		for _, id := range page {
			if to != "" && id > to {
				return ids, nil
			}
			ids = append(ids, id)
		}
		if len(page) < d.cfg.BatchSize || (to != "" && page[len(page)-1] == to) {
			return ids, nil
		}
		after = page[len(page)-1]
	}
}

// GateBatch decides for ids and enqueues what passed. For a batch seen
// before, sends decided by the earlier attempt keep their decision and are
// enqueued again if still in flight (the enqueue may not have happened
// before a crash).
func (d *Pipeline) GateBatch(ctx context.Context, st *runState, ids []string, seen bool) error {
	return d.gateBatch(ctx, st, ids, seen, nil)
}

// gateBatch is GateBatch; it delivers the first sends that may leave now
// itself when served holds their queue (enqueueSends).
func (d *Pipeline) gateBatch(ctx context.Context, st *runState, ids []string, seen bool, served map[string]int) error {
	contacts, err := d.Store.Contacts(ctx, ids)
	if err != nil {
		return err
	}
	members := make([]*dispatcher.Contact, 0, len(contacts))
	for _, c := range contacts {
		if c != nil && st.segment.Match(c) {
			members = append(members, c)
		}
	}
	if len(members) == 0 {
		return nil
	}
	fresh, pending := members, []storepkg.Decision(nil)
	if seen {
		if fresh, pending, err = d.undecided(ctx, st, members); err != nil {
			return err
		}
	}
	now := d.cfg.Now()
	ds, err := d.gate.Decide(ctx, now, gatepkg.Job{Run: st.id, Campaign: st.campaign, Topic: st.topic, LocalTime: st.localTime, Earlier: st.earlier}, fresh)
	if err != nil {
		return err
	}
	if err := d.Store.RecordDecisions(ctx, st.id, ds, d.cfg.InflightDeadline); err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	d.countDecisions(ds)
	pending = slices.Grow(pending, len(ds))
	for _, dc := range ds {
		if dc.State == dispatcher.StateQueued || dc.State == dispatcher.StateDeferred {
			pending = append(pending, dc)
		}
	}
	return d.enqueueSends(ctx, st.id, pending, served)
}

// undecided splits members into those without a send yet and the sends
// decided before that are still in flight.
func (d *Pipeline) undecided(ctx context.Context, st *runState, members []*dispatcher.Contact) (fresh []*dispatcher.Contact, pending []storepkg.Decision, err error) {
	var sendIDs []string
	for _, c := range members {
		if st.campaign.Fallback {
			sendIDs = append(sendIDs, dispatcher.SendID(st.id, c.ID, "any"))
		} else {
			for _, k := range st.campaign.Channels {
				sendIDs = append(sendIDs, dispatcher.SendID(st.id, c.ID, k))
			}
		}
	}
	existing, err := d.Store.Sends(ctx, sendIDs)
	if err != nil {
		return nil, nil, err
	}
	perContact := len(sendIDs) / len(members)
	for i, c := range members {
		decided := false
		for _, s := range existing[i*perContact : (i+1)*perContact] {
			if s == nil {
				continue
			}
			decided = true
			if s.State == dispatcher.StateQueued || s.State == dispatcher.StateDeferred {
				pending = append(pending, storepkg.Decision{Send: s.ID, State: s.State, Until: s.Until})
			}
		}
		if !decided {
			fresh = append(fresh, c)
		}
	}
	return fresh, pending, nil
}

// enqueueSends groups sends by the minute they may leave and enqueues
// them in chunks. Task ids derive from the sends, so enqueuing the same
// group twice adds nothing. The first sendChunk sends that may leave now
// are delivered here when served holds their queue, and enqueued only if
// that stops short (a pause, a rate limit to wait for, a failure).
func (d *Pipeline) enqueueSends(ctx context.Context, run string, ds []storepkg.Decision, served map[string]int) error {
	now := d.cfg.Now()
	groups := map[int64][]string{}
	var order []int64
	for _, dc := range ds {
		var at int64
		if dc.State == dispatcher.StateDeferred && dc.Until.After(now) {
			at = dc.Until.Unix()
		}
		if _, ok := groups[at]; !ok {
			order = append(order, at)
		}
		_, h, _ := dispatcher.SplitSendID(dc.Send)
		groups[at] = append(groups[at], h)
	}
	slices.Sort(order)
	enqueue := func(at int64, chunk []string) error {
		opts := []asynq.Option{asynq.Queue(d.sendQueue(chunk[0])), asynq.TaskID(chunkID(run, chunk))}
		if at > 0 {
			opts = append(opts, asynq.ProcessAt(time.Unix(at, 0)))
		}
		return d.enqueue(ctx, TypeSend, sendPayload{Run: run, Sends: chunk}, opts...)
	}
	var first []string // delivered here, once the others are queued
	for _, at := range order {
		hs := groups[at]
		if at == 0 && served[d.sendQueue(hs[0])] > 0 {
			first, hs = hs[:min(len(hs), sendChunk)], hs[min(len(hs), sendChunk):]
		}
		for i := 0; i < len(hs); i += d.cfg.SendChunk {
			if err := enqueue(at, hs[i:min(i+d.cfg.SendChunk, len(hs))]); err != nil {
				return err
			}
		}
	}
	if first != nil && d.sendTask(ctx, sendPayload{Run: run, Sends: first}, sendOptions{noWait: true}) != nil {
		// A pause, a limit to wait for, a failure: the task takes it from
		// here.
		return enqueue(0, first)
	}
	return nil
}

// chunkID names a send task after the sends it carries.
func chunkID(run string, hashes []string) string {
	h := fnv.New64a()
	for _, s := range hashes {
		h.Write([]byte(s))
	}
	return run + "~s" + strconv.FormatUint(h.Sum64(), 36)
}
