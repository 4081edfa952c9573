package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/templates"
)

// CreateCampaign validates and stores a new campaign in the draft state
// (or scheduled, when it has a schedule). Returns an error with code
// conflict if the id is taken.
func (d *Pipeline) CreateCampaign(ctx context.Context, c *dispatcher.Campaign) error {
	if err := d.checkCampaign(ctx, c); err != nil {
		return err
	}
	if _, err := d.Store.Campaign(ctx, c.ID); err == nil {
		return dispatcher.Conflict("campaign %q exists", c.ID)
	}
	c.State, c.LastFire, c.LastRun, c.ScheduledAt = dispatcher.Draft, time.Time{}, "", time.Time{}
	if c.Schedule != nil {
		if !c.Schedule.At.IsZero() && c.Schedule.At.Before(d.cfg.Now()) {
			return dispatcher.Invalid("schedule.at", "is in the past; start the campaign to send now")
		}
		c.State, c.ScheduledAt = dispatcher.Scheduled, d.cfg.Now().UTC()
	}
	return d.Store.PutCampaign(ctx, c)
}

// checkCampaign validates c and the records it names.
func (d *Pipeline) checkCampaign(ctx context.Context, c *dispatcher.Campaign) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := d.Store.Topic(ctx, c.Topic); err != nil {
		return dispatcher.Invalid("topic", "names no topic")
	}
	if _, err := d.Store.Segment(ctx, c.Segment); err != nil {
		return dispatcher.Invalid("segment", "names no segment")
	}
	for _, k := range c.Channels {
		t, err := d.Store.Template(ctx, c.Templates[k])
		if err != nil {
			return dispatcher.Invalid("templates."+string(k), "names no template")
		}
		if (k == channels.Email && t.Email == nil) || (k == channels.SMS && t.SMS == nil) {
			return dispatcher.Invalid("templates."+string(k), "template has no %s part", k)
		}
		if d.cfg.Channels[k] == nil {
			return dispatcher.Invalid("channels", "no %s channel is configured", k)
		}
	}
	return nil
}

// ScheduleCampaign sets a campaign's schedule and moves it to scheduled.
// A one-time schedule must lie ahead: to send now, start the campaign.
func (d *Pipeline) ScheduleCampaign(ctx context.Context, id string, s dispatcher.Schedule) (*dispatcher.Campaign, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !s.At.IsZero() && s.At.Before(d.cfg.Now()) {
		return nil, dispatcher.Invalid("at", "is in the past; start the campaign to send now")
	}
	c, err := d.Store.UpdateCampaign(ctx, id, func(c *dispatcher.Campaign) (bool, error) {
		if c.State != dispatcher.Draft && c.State != dispatcher.Scheduled {
			return false, dispatcher.Conflict("campaign is %s: only a draft or scheduled campaign can be scheduled", c.State)
		}
		c.Schedule, c.State, c.ScheduledAt = &s, dispatcher.Scheduled, d.cfg.Now().UTC()
		if !s.At.IsZero() {
			c.LastFire = time.Time{}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	attrs := []any{"campaign", id, "action", "schedule"}
	if s.At.IsZero() {
		attrs = append(attrs, "cron", s.Cron, "tz", s.TZ)
	} else {
		attrs = append(attrs, "at", s.At.UTC())
	}
	if s.LocalTime != "" {
		attrs = append(attrs, "local_time", s.LocalTime)
	}
	d.log.Info("campaign scheduled", attrs...)
	return c, nil
}

// StartOptions say how a start was asked for.
type StartOptions struct {
	// Key, when set, names the start (the API's Idempotency-Key): a start
	// repeated with the same key returns the run the first one made.
	Key string
	// NewRun starts another run of a campaign that has one under way or
	// has completed. A one-shot campaign's new run reaches only the
	// contacts its earlier runs did not.
	NewRun bool
}

// Started is the run a start made, or found when its key was used before.
type Started struct {
	Run     string `json:"run"`
	Created bool   `json:"created"`
}

// startLock bounds how long a start holds its campaign's lock: a process
// that dies mid-start leaves it to expire.
const startLock = 30 * time.Second

// Start starts a run of a campaign now, on request (the API, the CLI).
// Returns an error with code conflict when the campaign has a run under way
// or completed (unless opts.NewRun), is paused or cancelled, or another
// start of it is under way.
func (d *Pipeline) Start(ctx context.Context, id string, opts StartOptions) (Started, error) {
	now := d.cfg.Now()
	runID := id + "-" + strconv.FormatInt(now.UnixMilli(), 36)
	if opts.Key != "" {
		h := sha256.Sum256([]byte(opts.Key))
		runID = id + "-k" + hex.EncodeToString(h[:8])
		if r, err := d.Store.Run(ctx, runID); err == nil {
			// The same start again: finish what a crash may have left.
			c, err := d.Store.Campaign(ctx, id)
			if err != nil {
				return Started{}, err
			}
			_, err = d.startRun(ctx, c, runID, r.FireAt)
			return Started{Run: runID}, err
		} else if !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			return Started{}, err
		}
	}
	release, err := d.Store.Lock(ctx, "start:"+id, startLock)
	if err != nil {
		return Started{}, err
	}
	if release == nil {
		return Started{}, dispatcher.Conflict("another start of this campaign is under way; try again in a moment")
	}
	defer release(context.WithoutCancel(ctx))
	c, err := d.Store.Campaign(ctx, id)
	if err != nil {
		return Started{}, err
	}
	active, err := d.Store.ActiveRunsOf(ctx, id)
	if err != nil {
		return Started{}, err
	}
	switch {
	case c.State == dispatcher.Cancelled:
		return Started{}, dispatcher.Conflict("campaign is cancelled")
	case c.State == dispatcher.Paused:
		return Started{}, dispatcher.Conflict("campaign is paused: resume it first")
	case len(active) > 0 && !opts.NewRun:
		return Started{}, dispatcher.Conflict("campaign has a run under way (%s): pause or cancel it, or ask for a new run", active[0])
	case c.State == dispatcher.Completed && !opts.NewRun:
		return Started{}, dispatcher.Conflict("campaign is completed: ask for a new run to reach the contacts it has not reached")
	}
	created, err := d.startRun(ctx, c, runID, now)
	return Started{Run: runID, Created: created}, err
}

// StartRun creates the run of campaign fired at fireAt by its schedule and
// enqueues its plan. The run id derives from the campaign and the fire
// time, so two schedulers, or a retried call, create one run only. It
// returns the run id.
func (d *Pipeline) StartRun(ctx context.Context, campaignID string, fireAt time.Time) (string, error) {
	c, err := d.Store.Campaign(ctx, campaignID)
	if err != nil {
		return "", err
	}
	switch c.State {
	case dispatcher.Cancelled, dispatcher.Completed:
		return "", dispatcher.Conflict("campaign is %s", c.State)
	case dispatcher.Paused:
		return "", dispatcher.Conflict("campaign is paused: resume it first")
	}
	runID := c.ID + "-" + strconv.FormatInt(fireAt.Unix(), 36)
	_, err = d.startRun(ctx, c, runID, fireAt)
	return runID, err
}

// startRun creates run runID of c fired at fireAt, unless it exists, and
// enqueues its plan. Each step may run again after a crash: the snapshot
// is written once, before the run that needs it, and the plan's task id
// derives from the run.
func (d *Pipeline) startRun(ctx context.Context, c *dispatcher.Campaign, runID string, fireAt time.Time) (bool, error) {
	if err := d.checkCampaign(ctx, c); err != nil {
		return false, err
	}
	snap := runSnapshot{Campaign: *c, Templates: map[channels.Kind]templates.Template{}}
	seg, err := d.Store.Segment(ctx, c.Segment)
	if err != nil {
		return false, err
	}
	topic, err := d.Store.Topic(ctx, c.Topic)
	if err != nil {
		return false, err
	}
	snap.Segment, snap.Topic = *seg, *topic
	for _, k := range c.Channels {
		t, err := d.Store.Template(ctx, c.Templates[k])
		if err != nil {
			return false, err
		}
		snap.Templates[k] = *t
	}
	if c.Schedule != nil {
		snap.LocalTime = c.Schedule.LocalTime
	}
	if c.Schedule == nil || c.Schedule.Cron == "" {
		// A one-shot campaign reaches each contact once across its runs.
		earlier, err := d.Store.Runs(ctx, c.ID)
		if err != nil {
			return false, err
		}
		snap.Earlier = slices.DeleteFunc(earlier, func(r string) bool { return r == runID })
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return false, err
	}
	if _, err := d.Store.AddRunSnapshot(ctx, runID, b); err != nil {
		return false, err
	}
	created, err := d.Store.CreateRun(ctx, &dispatcher.Run{ID: runID, Campaign: c.ID, State: dispatcher.RunPlanning, FireAt: fireAt})
	if err != nil {
		return false, err
	}
	if created {
		d.log.Info("run started", "run", runID, "campaign", c.ID)
	}
	if _, err := d.Store.UpdateCampaign(ctx, c.ID, func(c *dispatcher.Campaign) (bool, error) {
		changed := c.State != dispatcher.Running && c.State != dispatcher.Paused
		if changed {
			c.State = dispatcher.Running
		}
		if fireAt.After(c.LastFire) {
			c.LastFire, c.LastRun, changed = fireAt, runID, true
		}
		return changed, nil
	}); err != nil {
		return false, err
	}
	return created, d.enqueue(ctx, TypePlan, planPayload{Run: runID}, asynq.Queue(d.Queue("plan")), asynq.TaskID(runID+"~plan"))
}

// Run and campaign actions.
const (
	ActionPause  = "pause"
	ActionResume = "resume"
	ActionCancel = "cancel"
)

// SetCampaignState pauses, resumes or cancels a campaign and its runs
// under way. Pausing holds queued sends (they wait, nothing is lost) and
// the schedule; cancelling settles them as cancelled.
//
// The runs first, then the campaign: the campaign's record and the runs'
// live in different slots, and a crash between them must leave the
// campaign as it was, so that the action asked again applies (a campaign
// changed first would refuse it, its runs going on as before).
func (d *Pipeline) SetCampaignState(ctx context.Context, id string, action string) (*dispatcher.Campaign, error) {
	active, err := d.Store.ActiveRunsOf(ctx, id)
	if err != nil {
		return nil, err
	}
	cur, err := d.Store.Campaign(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := campaignAction(cur, action, len(active)); err != nil {
		return nil, err
	}
	for _, r := range active {
		if _, err := d.setRunState(ctx, r, action); err != nil && !dispatcher.IsCode(err, dispatcher.CodeConflict) {
			return nil, err
		}
	}
	c, err := d.Store.UpdateCampaign(ctx, id, func(c *dispatcher.Campaign) (bool, error) {
		if action == ActionCancel && len(active) > 0 && c.State == dispatcher.Completed {
			// The runs just cancelled left it with none under way, and a
			// run finishing or the reconciler settled it meanwhile: the
			// cancel, checked against its state before, still ends it.
			c.State = dispatcher.Cancelled
			return true, nil
		}
		return true, campaignAction(c, action, len(active))
	})
	if err != nil {
		return nil, err
	}
	d.log.Info("campaign "+pastTense(action), "campaign", id, "action", action, "state", string(c.State), "runs", len(active))
	return c, nil
}

// campaignAction applies action to c, which has active runs under way,
// or returns an error with code conflict when it does not apply.
func campaignAction(c *dispatcher.Campaign, action string, active int) error {
	switch {
	case action == ActionPause && (c.State == dispatcher.Running || c.State == dispatcher.Scheduled):
		c.State = dispatcher.Paused
	case action == ActionResume && c.State == dispatcher.Paused:
		c.State = idleState(c)
		if active > 0 {
			c.State = dispatcher.Running
		}
	case action == ActionCancel && c.State != dispatcher.Completed && c.State != dispatcher.Cancelled:
		c.State = dispatcher.Cancelled
	default:
		return dispatcher.Conflict("cannot %s a %s campaign", action, c.State)
	}
	return nil
}

// pastTense names what action did, for the logs.
func pastTense(action string) string {
	switch action {
	case ActionPause:
		return "paused"
	case ActionResume:
		return "resumed"
	case ActionCancel:
		return "cancelled"
	}
	return "changed"
}

// SetRunState pauses, resumes or cancels one run, whatever its
// campaign's other runs do. Returns an error with code conflict when the
// run is finished or the action does not apply to its state.
func (d *Pipeline) SetRunState(ctx context.Context, run, action string) (*dispatcher.Run, error) {
	r, err := d.Store.Run(ctx, run)
	if err != nil {
		return nil, err
	}
	if dispatcher.OneAtATime(r.Campaign) {
		return nil, dispatcher.Conflict("the sends of %s runs are not paused or cancelled together", r.Campaign)
	}
	if _, err := d.setRunState(ctx, run, action); err != nil {
		return nil, err
	}
	if action == ActionCancel {
		if err := d.settleCampaign(ctx, r.Campaign, ""); err != nil {
			return nil, err
		}
	}
	return d.Store.Run(ctx, run)
}

// setRunState applies action to a run and returns its new state.
func (d *Pipeline) setRunState(ctx context.Context, run, action string) (string, error) {
	st, err := d.Store.RunField(ctx, run, "state")
	if err != nil {
		return "", err
	}
	var next string
	switch {
	case st == dispatcher.RunCompleted || st == dispatcher.RunCancelled:
	case action == ActionPause && st != dispatcher.RunPaused:
		next = dispatcher.RunPaused
	case action == ActionResume && st == dispatcher.RunPaused:
		next = dispatcher.RunSending
	case action == ActionCancel:
		next = dispatcher.RunCancelled
	}
	if next == "" {
		return "", dispatcher.Conflict("cannot %s a %s run", action, st)
	}
	if err := d.Store.SetRunState(ctx, run, next); err != nil {
		return "", err
	}
	d.log.Info("run "+pastTense(action), "run", run, "action", action, "state", next)
	if next == dispatcher.RunCancelled {
		if err := d.cancelInflight(ctx, run); err != nil {
			return "", err
		}
	}
	return next, nil
}

// idleState is the state of a campaign with no run under way: scheduled
// while its schedule may fire again, else completed once a run was
// started, else draft.
func idleState(c *dispatcher.Campaign) dispatcher.CampaignState {
	switch {
	case c.Schedule != nil && (c.Schedule.Cron != "" || c.LastFire.IsZero()):
		return dispatcher.Scheduled
	case c.LastRun != "" || !c.LastFire.IsZero():
		return dispatcher.Completed
	}
	return dispatcher.Draft
}

// settleCampaign moves a running campaign whose runs, but the one
// finishing (or ""), are all finished to its idle state: a campaign is not
// completed while any run holds work.
func (d *Pipeline) settleCampaign(ctx context.Context, id, finishing string) error {
	active, err := d.Store.ActiveRunsOf(ctx, id)
	if err != nil || slices.ContainsFunc(active, func(r string) bool { return r != finishing }) {
		return err
	}
	_, err = d.Store.UpdateCampaign(ctx, id, func(c *dispatcher.Campaign) (bool, error) {
		if c.State != dispatcher.Running {
			return false, nil
		}
		c.State = idleState(c)
		return true, nil
	})
	if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil
	}
	return err
}

// cancelInflight settles a cancelled run's waiting sends right away, so
// its counters balance without waiting for their tasks.
func (d *Pipeline) cancelInflight(ctx context.Context, run string) error {
	for {
		ids, err := d.Store.InflightSends(ctx, run, 500)
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := d.settle(ctx, "", ids, InflightStates, dispatcher.StateCancelled, dispatcher.ReasonRunCancelled); err != nil {
			return err
		}
		ids2, err := d.Store.InflightSends(ctx, run, 1)
		if err != nil {
			return err
		}
		if len(ids2) > 0 && ids2[0] == ids[0] {
			return nil // left in "sending": the reconciler settles it
		}
	}
}

func (d *Pipeline) listDomain() string {
	u, err := url.Parse(d.cfg.PublicURL)
	if err != nil || u.Hostname() == "" {
		return "missive.invalid"
	}
	return u.Hostname()
}

// Leaving counts the sends of run waiting to leave, by when they may:
// out[0] may leave now (queued, or deferred to a time gone), out[i] for i
// in 1..n at a time in (now+(i-1)*step, now+i*step] (deferred by quiet
// hours, a local send time or a recipient's moments), out[n+1] later.
func (d *Pipeline) Leaving(ctx context.Context, run string, step time.Duration, n int) ([]int64, error) {
	// A send's in-flight deadline is when it may leave, plus the wait the
	// reconciler gives it.
	return d.Store.InflightByDeadline(ctx, run, d.cfg.Now().Add(d.cfg.InflightDeadline), step, n)
}

// RunStats is a run with its decisions, for the API and the CLI.
type RunStats struct {
	*dispatcher.Run
	Decisions map[string]int64 `json:"decisions"`
}

// CampaignStats returns the campaign's runs, newest first, with counters.
func (d *Pipeline) CampaignStats(ctx context.Context, id string) ([]RunStats, error) {
	if _, err := d.Store.Campaign(ctx, id); err != nil {
		return nil, err
	}
	ids, err := d.Store.Runs(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]RunStats, 0, len(ids))
	for _, r := range ids {
		run, err := d.Store.Run(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", r, err)
		}
		dec, err := d.Store.Decisions(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, RunStats{Run: run, Decisions: dec})
	}
	return out, nil
}
