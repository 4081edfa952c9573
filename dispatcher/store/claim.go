package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/redis/go-redis/v9"
)

// A Claim marks a piece of a provider's request as taken, so that the
// provider's retries, which carry the same token, event id or message SID,
// change nothing twice. The store builds its key; the zero Claim claims
// nothing.
type Claim struct{ key string }

// MailgunTokenClaim is the claim of a Mailgun webhook token, which the
// token's signature must not outlive. The key holds a hash of the token,
// never the token.
func (s *Store) MailgunTokenClaim(token string) Claim {
	return Claim{s.Key("mailgun", "token", sha256Hex(token))}
}

// ESPEventClaim is the claim of an email provider's event, f from the
// provider f.Source; the zero Claim when f has no EventID. The event's kind
// and address are part of it: a provider's id may name a message rather
// than an event (SendGrid falls back to sg_message_id) or cover several
// recipients.
func (s *Store) ESPEventClaim(f channels.Feedback) Claim {
	if f.EventID == "" {
		return Claim{}
	}
	return Claim{s.Key("esp", f.Source, "event", sha256Hex(f.EventID+"\x00"+string(f.Kind)+"\x00"+string(f.Address)))}
}

// InboundSMSClaim is the claim of an inbound SMS, by its Twilio MessageSid.
func (s *Store) InboundSMSClaim(sid string) Claim {
	return Claim{s.Key("twilio", "sid", sid)}
}

// Release drops c after the work it guarded failed, so that the provider's
// retry takes it again. It uses a fresh context of its own, since the
// caller's may be what failed; an error means c stays until it expires.
// The zero Claim has nothing to release.
func (s *Store) Release(ctx context.Context, c Claim) error {
	if c.key == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.Redis.Del(ctx, c.key).Err(); err != nil {
		return fmt.Errorf("release claim: %w", err)
	}
	return nil
}

// ClaimState is what ClaimPending found.
type ClaimState int

const (
	// ClaimTaken: the caller holds the claim; it calls MarkDone when the
	// work is done, or Release when it failed.
	ClaimTaken ClaimState = iota
	// ClaimBusy: another caller holds it and has not finished.
	ClaimBusy
	// ClaimDone: the work was done before.
	ClaimDone
)

// Values of a two-step claim.
const (
	claimPending = "pending"
	claimDone    = "done"
)

// ClaimPending takes c as pending for ttl, a lease short enough that a
// caller that crashed midway leaves the work to a retry. It reports
// ClaimBusy when the lease ends between its two reads: a retry will take
// it. The zero Claim is always taken.
func (s *Store) ClaimPending(ctx context.Context, c Claim, ttl time.Duration) (ClaimState, error) {
	if c.key == "" {
		return ClaimTaken, nil
	}
	ok, err := s.Redis.SetNX(ctx, c.key, claimPending, ttl).Result()
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	if ok {
		return ClaimTaken, nil
	}
	state, err := s.Redis.Get(ctx, c.key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return ClaimBusy, nil
	case err != nil:
		return 0, fmt.Errorf("read claim: %w", err)
	case state == claimDone:
		return ClaimDone, nil
	}
	return ClaimBusy, nil
}

// AwaitClaim is ClaimPending waiting up to wait while another caller
// holds c, so that a duplicate sent at once finds the work done rather
// than busy. It reports ClaimBusy when the holder has not finished by
// then, as when it died midway and its lease has not ended.
func (s *Store) AwaitClaim(ctx context.Context, c Claim, lease, wait time.Duration) (ClaimState, error) {
	deadline := time.Now().Add(wait)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		state, err := s.ClaimPending(ctx, c, lease)
		if err != nil || state != ClaimBusy || time.Now().Add(pause).After(deadline) {
			return state, err
		}
		select {
		case <-ctx.Done():
			return state, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// MarkDone records that the work of c, taken with ClaimPending, is done,
// and remembers it for ttl. The zero Claim has nothing to mark.
func (s *Store) MarkDone(ctx context.Context, c Claim, ttl time.Duration) error {
	if c.key == "" {
		return nil
	}
	if err := s.Redis.Set(ctx, c.key, claimDone, ttl).Err(); err != nil {
		return fmt.Errorf("mark claim done: %w", err)
	}
	return nil
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
