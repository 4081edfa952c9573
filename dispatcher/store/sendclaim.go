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

// SendClaimed is what ClaimSends found of one claim.
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

// ErrClaimNotDurable is returned by ClaimSends when no replica
// acknowledged the claims in time: they were undone and the sends are
// queued again, to be tried later.
var ErrClaimNotDurable = errors.New("claim sends: no replica acknowledged the claims in time; the sends wait")

// ClaimSends moves each send from queued or deferred to sending unless
// its run is paused or cancelled, and reads, in the same round trip and
// before the claim, whether the contact still exists and what checks 2 and
// 3 see. An opt-out, an erasure or a pause recorded before the claim is
// therefore seen by it, however long the send waited in its task. The
// claims of one run are one script call.
//
// With ClaimReplicas set, the same round trip ends with WAIT: the claims
// count only once that many replicas hold them, since a claim lost in a
// failover would make a message that left look fresh, and send it again.
// When they do not answer within ClaimWait the claims are undone (the
// sends are queued again, due back at their Lease at the latest) and
// ClaimSends returns ErrClaimNotDurable: sends wait while no replica keeps
// up rather than leave on a claim a failover could forget. Claims whose
// answer is lost are undone alike once Redis answers again
// (uncertainClaims). Should an undo itself be lost, the send stays
// "sending" and is settled ambiguous: never sent twice.
func (s *Store) ClaimSends(ctx context.Context, cs []SendClaim) ([]SendClaimed, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	exists := make([]*redis.IntCmd, len(cs))
	var reads []checkReads
	var calls []transitionCall
	var wait *redis.Cmd
	replicas, timeout := s.ClaimReplicas, cmp.Or(s.ClaimWait, time.Second)
	token := claimToken()
	ts := make([]Transition, len(cs))
	for i, c := range cs {
		ts[i] = Transition{Send: c.Send, From: dispatcher.StateQueued + "," + dispatcher.StateDeferred, To: dispatcher.StateSending,
			Deadline: c.Lease, UnlessHeld: true, Fields: []any{"attempts", 1, "claim", token}}
	}
	now := s.now()
	_, err := s.scriptPipeline(ctx, transitionScript, func(p redis.Pipeliner) {
		for i, c := range cs {
			exists[i] = p.Exists(ctx, s.ContactKey(c.Check.Contact))
		}
		reads = s.queueChecks(ctx, p, len(cs), false, func(i int) (*dispatcher.Topic, CheckRequest) { return cs[i].Topic, cs[i].Check })
		calls = s.evalTransitions(ctx, p, ts, now, nil)
		if replicas > 0 {
			// Below the client's read timeout (3 s by default).
			wait = p.Do(ctx, "wait", replicas, timeout.Milliseconds())
		}
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.uncertainClaims(ctx, cs, token, fmt.Errorf("claim sends: %w", err))
	}
	rs := make([]transitionResult, len(cs))
	for _, c := range calls {
		if err := c.parse(rs); err != nil {
			return nil, s.uncertainClaims(ctx, cs, token, err)
		}
	}
	out := make([]SendClaimed, len(cs))
	applied := false
	for i, r := range rs {
		applied = applied || r.Applied
		out[i] = SendClaimed{Claimed: r.Applied, Held: r.Held, Erased: exists[i].Val() == 0, Checked: reads[i].checked()}
	}
	if applied && wait != nil && !acknowledged(wait, replicas) {
		// The claims may yet reach a replica, and the master fail: give
		// them back wherever they are found.
		return nil, s.uncertainClaims(ctx, cs, token, ErrClaimNotDurable)
	}
	return out, nil
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

// uncertainClaims handles claims whose answer was lost (Redis restarted
// or failed over, a reply read too late by a process that was frozen):
// they may have been applied, and then nobody else would ever take the
// sends, which the reconciler would settle ambiguous although they never
// left. It reads the sends again, for up to claimResolve, and gives back
// those holding this claim (its token): queued, due back at their Lease.
// Nothing else can have changed a send "sending" under this claim but the
// reconciler, whose settlement the undo then leaves alone. It returns err,
// so that no message leaves and the task tries again.
func (s *Store) uncertainClaims(ctx context.Context, cs []SendClaim, token string, err error) error {
	deadline := time.Now().Add(claimResolve)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		if s.undoClaims(ctx, cs, token) == nil {
			return err
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

// undoClaims queues again the sends of cs still "sending" under token.
func (s *Store) undoClaims(ctx context.Context, cs []SendClaim, token string) error {
	cmds := make([]*redis.SliceCmd, len(cs))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range cs {
			cmds[i] = p.HMGet(ctx, s.SendKey(c.Send), "state", "claim")
		}
		return nil
	})
	if err != nil {
		return err
	}
	var undo []Transition
	for i, cmd := range cmds {
		vals := cmd.Val()
		state, _ := vals[0].(string)
		holder, _ := vals[1].(string)
		if state == dispatcher.StateSending && holder == token {
			undo = append(undo, Transition{Send: cs[i].Send, From: dispatcher.StateSending, To: dispatcher.StateQueued, Deadline: cs[i].Lease})
		}
	}
	if len(undo) == 0 {
		return nil
	}
	_, err = s.TransitionSends(ctx, undo)
	return err
}

// claimResolve bounds how long claims whose answer was lost are looked
// for: past a restart or a failover of Redis.
const claimResolve = 15 * time.Second
