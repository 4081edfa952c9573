package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
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
	c.State, c.LastFire = dispatcher.Draft, time.Time{}
	if c.Schedule != nil {
		c.State = dispatcher.Scheduled
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

// updateCampaign applies f to the stored campaign and saves it when f
// reports a change. Campaign edits are rare and made by one leader or one
// API call, so a read-modify-write is enough.
func (d *Pipeline) updateCampaign(ctx context.Context, id string, f func(*dispatcher.Campaign) bool) error {
	c, err := d.Store.Campaign(ctx, id)
	if err != nil {
		return err
	}
	if !f(c) {
		return nil
	}
	return d.Store.PutCampaign(ctx, c)
}

// ScheduleCampaign sets a campaign's schedule and moves it to scheduled.
func (d *Pipeline) ScheduleCampaign(ctx context.Context, id string, s dispatcher.Schedule) (*dispatcher.Campaign, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var out *dispatcher.Campaign
	var stateErr error
	err := d.updateCampaign(ctx, id, func(c *dispatcher.Campaign) bool {
		if c.State != dispatcher.Draft && c.State != dispatcher.Scheduled {
			stateErr = dispatcher.Conflict("campaign is %s: only a draft or scheduled campaign can be scheduled", c.State)
			return false
		}
		c.Schedule, c.State, out = &s, dispatcher.Scheduled, c
		return true
	})
	if err == nil {
		err = stateErr
	}
	return out, err
}

// StartRun creates a run of campaign fired at fireAt and enqueues its plan.
// The run id derives from the campaign and the fire time, so two
// schedulers, or a retried call, create one run only. It returns the run id.
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
	if err := d.checkCampaign(ctx, c); err != nil {
		return "", err
	}
	runID := c.ID + "-" + strconv.FormatInt(fireAt.Unix(), 36)
	snap := runSnapshot{Campaign: *c, Templates: map[channels.Kind]templates.Template{}}
	seg, err := d.Store.Segment(ctx, c.Segment)
	if err != nil {
		return "", err
	}
	topic, err := d.Store.Topic(ctx, c.Topic)
	if err != nil {
		return "", err
	}
	snap.Segment, snap.Topic = *seg, *topic
	for _, k := range c.Channels {
		t, err := d.Store.Template(ctx, c.Templates[k])
		if err != nil {
			return "", err
		}
		snap.Templates[k] = *t
	}
	if c.Schedule != nil {
		snap.LocalTime = c.Schedule.LocalTime
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return "", err
	}
	created, err := d.Store.CreateRun(ctx, &dispatcher.Run{ID: runID, Campaign: c.ID, State: dispatcher.RunPlanning, FireAt: fireAt})
	if err != nil {
		return "", err
	}
	if created {
		if err := d.Store.PutRunSnapshot(ctx, runID, b); err != nil {
			return "", err
		}
		d.log.Info("run started", "run", runID, "campaign", c.ID)
	}
	if err := d.updateCampaign(ctx, c.ID, func(c *dispatcher.Campaign) bool {
		changed := c.State != dispatcher.Running && c.State != dispatcher.Paused
		if changed {
			c.State = dispatcher.Running
		}
		if fireAt.After(c.LastFire) {
			c.LastFire, changed = fireAt, true
		}
		return changed
	}); err != nil {
		return "", err
	}
	return runID, d.enqueue(ctx, TypePlan, planPayload{Run: runID}, asynq.Queue(d.Queue("plan")), asynq.TaskID(runID+"~plan"))
}

// SetCampaignState pauses, resumes or cancels a campaign and its running
// runs. Pausing holds queued sends (they wait, nothing is lost); cancelling
// settles them as cancelled.
func (d *Pipeline) SetCampaignState(ctx context.Context, id string, action string) (*dispatcher.Campaign, error) {
	var out *dispatcher.Campaign
	var stateErr error
	err := d.updateCampaign(ctx, id, func(c *dispatcher.Campaign) bool {
		out = c
		switch {
		case action == "pause" && (c.State == dispatcher.Running || c.State == dispatcher.Scheduled):
			c.State = dispatcher.Paused
		case action == "resume" && c.State == dispatcher.Paused:
			c.State = dispatcher.Running
		case action == "cancel" && c.State != dispatcher.Completed && c.State != dispatcher.Cancelled:
			c.State = dispatcher.Cancelled
		default:
			stateErr = dispatcher.Conflict("cannot %s a %s campaign", action, c.State)
			return false
		}
		return true
	})
	if err == nil {
		err = stateErr
	}
	if err != nil {
		return nil, err
	}
	runs, err := d.Store.Runs(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		st, err := d.Store.RunField(ctx, r, "state")
		if err != nil {
			return nil, err
		}
		if st == dispatcher.RunCompleted || st == dispatcher.RunCancelled {
			continue
		}
		next := map[string]string{"pause": dispatcher.RunPaused, "resume": dispatcher.RunSending, "cancel": dispatcher.RunCancelled}[action]
		if err := d.Store.SetRunState(ctx, r, next); err != nil {
			return nil, err
		}
		if action == "cancel" {
			if err := d.cancelInflight(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// cancelInflight settles a cancelled run's waiting sends right away, so
// its counters balance without waiting for their tasks.
func (d *Pipeline) cancelInflight(ctx context.Context, run string) error {
	for {
		ids, err := d.Store.InflightSends(ctx, run, 500)
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := d.Settle(ctx, ids, InflightStates, dispatcher.StateCancelled, dispatcher.ReasonRunCancelled); err != nil {
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
