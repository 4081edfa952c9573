package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/templates"
)

// runSnapshot is what a run was started with. It is written once when the
// run is created, so that editing a campaign, segment or template later
// does not change a run under way.
type runSnapshot struct {
	Campaign  dispatcher.Campaign                  `json:"campaign"`
	Segment   dispatcher.Segment                   `json:"segment"`
	Topic     dispatcher.Topic                     `json:"topic"`
	Templates map[channels.Kind]templates.Template `json:"templates"`
	LocalTime string                               `json:"local_time,omitempty"`
	// Earlier lists the campaign's runs before this one, for a one-shot
	// campaign: a contact one of them reached is not reached again.
	Earlier []string `json:"earlier,omitempty"`
}

// runState is a run's snapshot, compiled, plus its current state.
type runState struct {
	id        string
	state     string
	campaign  *dispatcher.Campaign
	segment   *dispatcher.Segment
	topic     *dispatcher.Topic
	localTime string
	earlier   []string
	compiled  map[channels.Kind]*templates.Compiled
}

// snapshots caches compiled run snapshots per process: they never change.
type snapshots struct {
	mu sync.Mutex
	m  map[string]*runState
}

// LoadRun returns what the run was started with, compiled, from a
// per-process cache: a snapshot never changes.
func (d *Pipeline) LoadRun(ctx context.Context, run string) (*runState, error) {
	state, err := d.Store.RunField(ctx, run, "state")
	if err != nil {
		return nil, fmt.Errorf("load run: %w", err)
	}
	if state == "" {
		return nil, dispatcher.NotFound("run")
	}
	d.snap.mu.Lock()
	cached := d.snap.m[run]
	d.snap.mu.Unlock()
	if cached == nil {
		raw, err := d.Store.RunSnapshot(ctx, run)
		if err != nil {
			return nil, fmt.Errorf("run %s: load snapshot: %w", run, err)
		}
		var snap runSnapshot
		if err := json.Unmarshal(raw, &snap); err != nil {
			return nil, fmt.Errorf("run %s: decode snapshot: %w", run, err)
		}
		cached = &runState{id: run, campaign: &snap.Campaign, segment: &snap.Segment, topic: &snap.Topic,
			localTime: snap.LocalTime, earlier: snap.Earlier, compiled: map[channels.Kind]*templates.Compiled{}}
		for k, t := range snap.Templates {
			c, err := templates.Compile(t)
			if err != nil {
				return nil, fmt.Errorf("run %s: template for %s: %w", run, k, err)
			}
			cached.compiled[k] = c
		}
		d.snap.mu.Lock()
		if len(d.snap.m) > 256 {
			clear(d.snap.m)
		}
		d.snap.m[run] = cached
		d.snap.mu.Unlock()
	}
	st := *cached
	st.state = state
	return &st, nil
}
