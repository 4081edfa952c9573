package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
)

// SendClaim asks to take a send for delivery, right before its message is
// handed to the provider.
type SendClaim struct {
	Send string
	// Lease is when the reconciler may take a send still "sending" for
	// abandoned.
	Lease time.Time
	// Check names the address whose suppression and consent (for a
	// marketing Topic) are read at the instant of the claim.
	Check CheckRequest
	Topic *dispatcher.Topic
}

// SendClaimed is what ClaimSend found.
type SendClaimed struct {
	// Claimed: the send is now "sending", for this caller only.
	Claimed bool
	// Held is the state of the send's run when it holds every claim
	// (paused or cancelled); nothing changed then.
	Held string
	// Erased: the contact no longer exists.
	Erased bool
	// Checked is what the claim read of suppression and consent; the
	// caller applies the gate to it and settles a claimed send that may
	// not go.
	Checked Checked
}

// ErrClaimNotDurable is returned by ClaimSend when no replica
// acknowledged the claim in time: the claim was undone and the send is
// queued again, to be tried later.
var ErrClaimNotDurable = errors.New("claim send: no replica acknowledged the claim in time; the send waits")

// ClaimSend moves c.Send from queued or deferred to sending unless its run
// is paused or cancelled, and reads, in the same round trip and before the
// claim, whether the contact still exists and what checks 2 and 3 see. An
// opt-out, an erasure or a pause recorded before the claim is therefore
// seen by it, however long the send waited in its task.
//
// With ClaimReplicas set, the same round trip ends with WAIT: the claim
// counts only once that many replicas hold it, since a claim lost in a
// failover would make a message that left look fresh, and send it again.
// When they do not answer within ClaimWait the claim is undone (the send
// is queued again, due back at c.Lease at the latest) and ClaimSend
// returns ErrClaimNotDurable: sends wait while no replica keeps up rather
// than leave on a claim a failover could forget. A claim whose answer is
// lost is undone alike once Redis answers again (uncertainClaim). Should
// an undo itself be lost, the send stays "sending" and is settled
// ambiguous: never sent twice.
func (s *Store) ClaimSend(ctx context.Context, c SendClaim) (SendClaimed, error) {
	var exists *redis.IntCmd
	var reads checkReads
	var claim *redis.Cmd
	var wait *redis.Cmd
	replicas, timeout := s.ClaimReplicas, cmp.Or(s.ClaimWait, time.Second)
	token := claimToken()
	t := Transition{Send: c.Send, From: dispatcher.StateQueued + "," + dispatcher.StateDeferred, To: dispatcher.StateSending,
		Deadline: c.Lease, UnlessHeld: true, Fields: []any{"attempts", 1, "claim", token}}
	now := s.now()
	_, err := s.scriptPipeline(ctx, transitionScript, func(p redis.Pipeliner) {
		exists = p.Exists(ctx, s.ContactKey(c.Check.Contact))
		reads = s.readChecks(ctx, p, c.Topic, c.Check)
		claim = s.evalTransition(ctx, p, t, now)
		if replicas > 0 {
			// Below the client's read timeout (3 s by default).
			wait = p.Do(ctx, "wait", replicas, timeout.Milliseconds())
		}
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return SendClaimed{}, s.uncertainClaim(ctx, c, token, fmt.Errorf("claim send: %w", err))
	}
	vals, err := claim.Slice()
	if err != nil || len(vals) < 2 {
		return SendClaimed{}, s.uncertainClaim(ctx, c, token, fmt.Errorf("claim send: %v", err))
	}
	r := parseTransition(vals)
	if r.Applied && wait != nil && !acknowledged(wait, replicas) {
		// The claim may yet reach a replica, and the master fail: give it
		// back wherever it is found.
		return SendClaimed{}, s.uncertainClaim(ctx, c, token, ErrClaimNotDurable)
	}
	return SendClaimed{Claimed: r.Applied, Held: r.Held, Erased: exists.Val() == 0, Checked: reads.checked()}, nil
}

// acknowledged reports whether a WAIT answered that n replicas hold the
// writes before it.
func acknowledged(wait *redis.Cmd, n int) bool {
	acked, err := wait.Int64()
	return err == nil && acked >= int64(n)
}

// claimToken names one claim, so that its taker can tell it from
// another's.
func claimToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// uncertainClaim handles a claim whose answer was lost (Redis restarted
// or failed over, a reply read too late by a process that was frozen): it
// may have been applied, and then nobody else would ever take the send,
// which the reconciler would settle ambiguous although it never left. It
// reads the send again, for up to claimResolve, and when it holds this
// claim (its token), gives it back: queued, due back at c.Lease. Nothing
// else can have changed a send "sending" under this claim but the
// reconciler, whose settlement the undo then leaves alone. It returns err,
// so that the message does not leave and its task tries again.
func (s *Store) uncertainClaim(ctx context.Context, c SendClaim, token string, err error) error {
	deadline := time.Now().Add(claimResolve)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		vals, rerr := s.Redis.HMGet(ctx, s.SendKey(c.Send), "state", "claim").Result()
		if rerr == nil {
			state, _ := vals[0].(string)
			holder, _ := vals[1].(string)
			if state != dispatcher.StateSending || holder != token {
				return err // not applied, or settled since
			}
			undo := Transition{Send: c.Send, From: dispatcher.StateSending, To: dispatcher.StateQueued, Deadline: c.Lease}
			if _, rerr = s.TransitionSends(ctx, []Transition{undo}); rerr == nil {
				return err
			}
		}
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// claimResolve bounds how long a claim whose answer was lost is looked
// for: past a restart or a failover of Redis.
const claimResolve = 15 * time.Second
