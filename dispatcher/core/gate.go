package core

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
)

// Gate reasons: one per decision, counted per run.
const (
	ReasonNoAddress      = "no_address"
	ReasonInvalidAddress = "invalid_address"
	ReasonNoConsent      = "no_consent"
	ReasonCapped         = "capped"
)

func suppressedReason(r string) string { return "suppressed_" + r }

// gate runs the checks of DESIGN.md in order, for many contacts at once:
// address, suppression, consent, caps, quiet hours. Rate limits apply at
// send time. Each contact costs a few pipelined Redis operations.
type gate struct {
	store  *storepkg.Store
	caps   *throttle.Caps
	quiet  map[channels.Kind]throttle.Calendar
	jitter time.Duration
}

// gateJob describes what the gate decides for: one run of one campaign.
type gateJob struct {
	run       string
	campaign  *dispatcher.Campaign
	topic     *dispatcher.Topic
	localTime string // "HH:MM" in each recipient's zone, or ""
	// sendID, when set, is the id of the one send decided (an API send,
	// whose id derives from its idempotency key).
	sendID string
	// ref is what the one send answers (Send.Ref), or "".
	ref string
	// requested: the recipient asked for this message a moment ago (a
	// sign-up confirmation): quiet hours do not hold it back.
	requested bool
}

type candidate struct {
	contact *dispatcher.Contact
	channel channels.Kind
	send    string
	addr    string
	reason  string
	supCmd  *redis.StringCmd
	conCmd  *redis.StringCmd
}

// checkAddress is check 1: an address present and usable on the channel.
func checkAddress(c *dispatcher.Contact, k channels.Kind) string {
	addr := c.Address(k)
	if addr == "" {
		return ReasonNoAddress
	}
	switch k {
	case channels.Email:
		if _, err := dispatcher.NormalizeEmail(addr); err != nil {
			return ReasonInvalidAddress
		}
	case channels.SMS:
		if _, err := dispatcher.NormalizePhone(addr); err != nil || !dispatcher.SMSCapable(addr) {
			return ReasonInvalidAddress
		}
	}
	return ""
}

// loadChecks fetches suppression and consent for the candidates that
// passed the address check, in one pipeline.
func (g *gate) loadChecks(ctx context.Context, topic *dispatcher.Topic, cs []*candidate) error {
	_, err := g.store.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range cs {
			if c.reason != "" {
				continue
			}
			c.supCmd = p.Get(ctx, g.store.Key("sup", g.store.AddressHash(c.channel, c.addr)))
			if topic.Kind == dispatcher.Marketing {
				c.conCmd = p.HGet(ctx, g.store.ConsentKey(c.contact.ID), storepkg.ConsentField(c.channel, topic.ID))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("gate: load suppression and consent: %w", err)
	}
	for _, c := range cs {
		if c.reason == "" {
			c.reason = checkLoaded(c.supCmd, c.conCmd)
		}
	}
	return nil
}

// checkLoaded applies checks 2 and 3 to loaded values.
func checkLoaded(sup, consent *redis.StringCmd) string {
	if b, err := sup.Bytes(); err == nil {
		var s dispatcher.Suppression
		if json.Unmarshal(b, &s) == nil && s.Reason != "" {
			return suppressedReason(s.Reason)
		}
		return suppressedReason(dispatcher.SuppressUnsubscribe)
	}
	if consent != nil {
		var cur storepkg.ConsentCurrent
		b, err := consent.Bytes()
		if err != nil || json.Unmarshal(b, &cur) != nil || cur.State != dispatcher.Granted {
			return ReasonNoConsent
		}
	}
	return ""
}

// decide returns one decision per contact and channel (or per contact in
// fallback mode). Caps are reserved for the sends that will go out.
func (g *gate) decide(ctx context.Context, now time.Time, job gateJob, contacts []*dispatcher.Contact) ([]storepkg.Decision, error) {
	camp := job.campaign
	var cands []*candidate
	for _, c := range contacts {
		for _, k := range camp.Channels {
			cd := &candidate{contact: c, channel: k, addr: c.Address(k), reason: checkAddress(c, k)}
			switch {
			case job.sendID != "":
				cd.send = job.sendID
			case camp.Fallback:
				cd.send = dispatcher.SendID(job.run, c.ID, "any")
			default:
				cd.send = dispatcher.SendID(job.run, c.ID, k)
			}
			cands = append(cands, cd)
		}
	}
	if err := g.loadChecks(ctx, job.topic, cands); err != nil {
		return nil, err
	}
	if camp.Fallback {
		cands = pickFallback(cands, len(camp.Channels))
	}

	var reqs []throttle.CapRequest
	var reqIdx []int
	for i, c := range cands {
		if c.reason == "" {
			reqs = append(reqs, throttle.CapRequest{Contact: c.contact.ID, Channel: string(c.channel),
				Topic: job.topic.ID, SendID: c.send, Marketing: job.topic.Kind == dispatcher.Marketing})
			reqIdx = append(reqIdx, i)
		}
	}
	if len(reqs) > 0 && g.caps != nil {
		ok, err := g.caps.ReserveMany(ctx, now, reqs)
		if err != nil {
			return nil, fmt.Errorf("gate: reserve caps: %w", err)
		}
		for j, i := range reqIdx {
			if !ok[j] {
				cands[i].reason = ReasonCapped
			}
		}
	}

	out := make([]storepkg.Decision, 0, len(cands))
	for _, c := range cands {
		d := storepkg.Decision{Send: c.send, Contact: c.contact.ID, Channel: c.channel, Topic: job.topic.ID,
			Template: camp.Templates[c.channel], State: dispatcher.StateSuppressed, Reason: c.reason, Ref: job.ref}
		if c.reason == "" {
			d.State, d.Reason = dispatcher.StateQueued, ""
			if until := g.sendTime(now, job.localTime, c); until.After(now) && !job.requested {
				d.State, d.Until = dispatcher.StateDeferred, until
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// pickFallback keeps, for each contact, the first channel that passed
// checks 1-3, or else the first channel with its reason.
func pickFallback(cands []*candidate, perContact int) []*candidate {
	out := make([]*candidate, 0, len(cands)/perContact)
	for i := 0; i < len(cands); i += perContact {
		pick := cands[i]
		for _, c := range cands[i : i+perContact] {
			if c.reason == "" {
				pick = c
				break
			}
		}
		out = append(out, pick)
	}
	return out
}

// sendTime is check 5: the first instant at or after now (or the
// recipient's local send time) that the channel's quiet hours allow, in the
// recipient's zone. Deferred sends get a jitter derived from the send id,
// so that they do not all leave in the same second, kept inside the window.
func (g *gate) sendTime(now time.Time, localTime string, c *candidate) time.Time {
	loc, err := dispatcher.LoadLocation(c.contact.Timezone)
	if err != nil {
		loc = time.UTC
	}
	at := now
	if localTime != "" {
		at = nextLocal(now, localTime, loc)
	}
	cal, ok := g.quiet[c.channel]
	if !ok {
		return at
	}
	open := cal.NextOpen(at, loc)
	if !open.After(now) || g.jitter <= 0 {
		return open
	}
	h := sha256.Sum256([]byte(c.send))
	j := time.Duration(binary.BigEndian.Uint64(h[:8]) % uint64(g.jitter))
	if jittered := open.Add(j); cal.NextOpen(jittered, loc).Equal(jittered) {
		return jittered
	}
	return open
}

// nextLocal returns the next instant at or after now when the wall clock
// in loc shows hh:mm. On a day when hh:mm does not exist (spring forward),
// time.Date moves it forward by the gap, which is what a person expects.
func nextLocal(now time.Time, hhmm string, loc *time.Location) time.Time {
	h, m, err := dispatcher.ParseClock(hhmm)
	if err != nil {
		return now
	}
	l := now.In(loc)
	t := time.Date(l.Year(), l.Month(), l.Day(), h, m, 0, 0, loc)
	if t.Before(now) {
		t = time.Date(l.Year(), l.Month(), l.Day()+1, h, m, 0, 0, loc)
	}
	return t
}
