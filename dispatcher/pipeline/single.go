package pipeline

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// OneRunID names the run that holds the sends decided one at a time by
// campaign (dispatcher.APICampaign or dispatcher.SignupCampaign) of a topic
// with a template version on one UTC day.
func OneRunID(campaign, topic, tpl string, version int, day time.Time) string {
	return campaign + "-" + topic + "-" + tpl + "-v" + strconv.Itoa(version) + "-" + day.UTC().Format("20060102")
}

// OneSend is a send decided on its own, outside a campaign run: an API
// send, a sign-up confirmation or a sequence's step. It goes the way every send goes: the
// gate, a send record, the queue, the one send path.
type OneSend struct {
	// Campaign is dispatcher.APICampaign, SignupCampaign or
	// SequenceCampaign.
	Campaign string
	// Run, when set, is the run that holds the send; default
	// OneRunID(Campaign, ...) of the day.
	Run string
	// Key names the send: its id derives from it, so a retry finds it.
	Key     string
	Contact *dispatcher.Contact
	Topic   *dispatcher.Topic
	Tpl     *templates.Template
	Channel channels.Kind
	// Fallback, when set, is the channel tried when Channel cannot reach
	// the contact (the gate's fallback: no address, no consent,
	// suppressed); the send's id is then the same on both.
	Fallback channels.Kind
	// Ref and requested: see gateJob.
	Ref       string
	Requested bool
	// Data, optional, is what the message's templates reach as .Data. It
	// is held with the send record, sealed, and only while the send may
	// still go: a send the gate stops keeps none.
	Data map[string]any
}

// DecideOne decides o once and enqueues it when it may go; a retry finds
// the decided send and enqueues it again.
func (d *Pipeline) DecideOne(ctx context.Context, o OneSend) (*dispatcher.Send, error) {
	s := d.Store
	now := d.cfg.Now()
	run := o.Run
	if run == "" {
		run = OneRunID(o.Campaign, o.Topic.ID, o.Tpl.ID, o.Tpl.Version, now)
	}
	if err := d.ensureOneRun(ctx, run, o.Campaign, o.Topic, o.Tpl, now); err != nil {
		return nil, err
	}
	kinds, idKind := []channels.Kind{o.Channel}, o.Channel
	if o.Fallback != "" {
		kinds, idKind = append(kinds, o.Fallback), "any"
	}
	id := dispatcher.SendID(run, o.Key, idKind)
	existing, err := s.Send(ctx, id)
	if err != nil && !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil, err
	}
	if existing == nil {
		camp := &dispatcher.Campaign{ID: o.Campaign, Topic: o.Topic.ID, Channels: kinds, Fallback: len(kinds) > 1,
			Templates: map[channels.Kind]string{}}
		for _, k := range kinds {
			camp.Templates[k] = o.Tpl.ID
		}
		job := gatepkg.Job{Run: run, Campaign: camp, Topic: o.Topic, SendID: id, Ref: o.Ref, Requested: o.Requested}
		ds, err := d.gate.Decide(ctx, now, job, []*dispatcher.Contact{o.Contact})
		if err != nil {
			return nil, err
		}
		// The send's id derives from its key, not its contact: index it
		// for erasure and export (campaign sends are found by their ids),
		// before the record, so that a record a crash left is indexed
		// (a retry finds the record and decides nothing).
		if err := s.IndexSends(ctx, ds); err != nil {
			return nil, err
		}
		if err := s.RecordDecisions(ctx, run, ds, d.cfg.InflightDeadline); err != nil {
			return nil, err
		}
		d.countDecisions(ds)
		// A concurrent request with the same key may have decided first:
		// the record holds the decision that counts.
		if existing, err = s.Send(ctx, id); err != nil {
			return nil, err
		}
	}
	if existing.State == dispatcher.StateQueued || existing.State == dispatcher.StateDeferred {
		// Before the enqueue, so the worker finds it; a retry writes what
		// a crash left unwritten, never over what is there.
		if o.Data != nil && existing.Data == nil {
			if _, err := s.SetSendData(ctx, id, o.Data); err != nil {
				return nil, err
			}
		}
		if err := d.enqueueSends(ctx, run, []storepkg.Decision{{Send: id, State: existing.State, Until: existing.Until}}, nil); err != nil {
			return nil, err
		}
	}
	return existing, nil
}

// ensureOneRun creates the run of sends decided one at a time once, with a
// snapshot holding every part of the template: email and SMS sends of the
// day share the run. The snapshot is written with SETNX even when the run
// exists, which repairs a run whose creator died between the two writes.
func (d *Pipeline) ensureOneRun(ctx context.Context, run, campaign string, topic *dispatcher.Topic, tpl *templates.Template, now time.Time) error {
	snap := runSnapshot{Topic: *topic, Templates: map[channels.Kind]templates.Template{},
		Campaign: dispatcher.Campaign{ID: campaign, Topic: topic.ID, Templates: map[channels.Kind]string{}}}
	for _, k := range channels.Kinds {
		if (k == channels.Email && tpl.Email != nil) || (k == channels.SMS && tpl.SMS != nil) {
			snap.Campaign.Channels = append(snap.Campaign.Channels, k)
			snap.Campaign.Templates[k] = tpl.ID
			snap.Templates[k] = *tpl
		}
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	created, err := d.Store.CreateRun(ctx, &dispatcher.Run{ID: run, Campaign: campaign, State: dispatcher.RunSending, FireAt: now})
	if err != nil {
		return err
	}
	if created {
		d.log.Info("run of single sends started", "run", run, "campaign", campaign)
	}
	_, err = d.Store.AddRunSnapshot(ctx, run, b)
	return err
}
