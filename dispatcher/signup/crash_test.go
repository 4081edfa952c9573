package signup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher/signup"
	"github.com/missive-dev/missive/throttle/redistest"
)

// diesAfterWrite lets the first SET of a key holding part through, then
// fails its reply and every command after it until revived: the process
// died right after that write.
type diesAfterWrite struct {
	part        string
	armed, dead atomic.Bool
}

var errDead = errors.New("connection reset")

func (h *diesAfterWrite) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *diesAfterWrite) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		err := next(ctx, cmd)
		args := cmd.Args()
		if err == nil && cmd.Name() == "set" && len(args) > 1 && strings.Contains(fmt.Sprint(args[1]), h.part) && h.armed.CompareAndSwap(true, false) {
			h.dead.Store(true)
			return errDead
		}
		return err
	}
}

func (h *diesAfterWrite) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		return next(ctx, cmds)
	}
}

// A sign-up of an address without a contact, whose process died once it
// had stored the provisional record holding the address, leaves that
// record where erasure finds it: through the address's pending sign-ups.
func TestSignupDiedAfterItsProvisionalRecordIsErasable(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	s, st, _ := setupOn(t, r)
	ctx := context.Background()
	hook := &diesAfterWrite{part: ":c:{s-"}
	hook.armed.Store(true)
	r.Client.AddHook(hook)
	in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "ana@example.com", Locale: "fr", Wording: "v3"}
	if err := s.Submit(ctx, in, "iphash", "test-agent"); err == nil {
		t.Fatal("Submit, its process dead after the provisional record: no error")
	}
	hook.dead.Store(false)
	if hook.armed.Load() {
		t.Fatal("no provisional record was written")
	}

	if _, err := st.DeletePendingSignupsOf(ctx, channels.Email, "ana@example.com"); err != nil {
		t.Fatal(err)
	}
	left, err := r.Client.Keys(ctx, r.Prefix+":c:{s-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("the erasure of the address left %v", left)
	}
}
