package redistest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// OnCommand makes rdb call f with each command it ran, alone or in a
// pipeline, once the command has its reply (cmd.Err and the value): a
// test counts or reads what its code sends to Redis.
func OnCommand(rdb *redis.Client, f func(cmd redis.Cmder)) {
	rdb.AddHook(commandHook(f))
}

type commandHook func(redis.Cmder)

func (h commandHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h commandHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h(cmd)
		return err
	}
}

func (h commandHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			h(cmd)
		}
		return err
	}
}

// Crash plays a process that dies right after a write (CrashAfter), or
// whose reply to a write is lost (LoseReply): the first command, alone or
// in a pipeline or transaction, that its match accepts runs, and then its
// reply fails.
type Crash struct {
	match       func(redis.Cmder) bool
	dies        bool
	armed, dead atomic.Bool
}

// ErrCrashed is the error a Crash answers in place of Redis's reply.
var ErrCrashed = errors.New("connection reset")

// CrashAfter makes rdb's first command that match accepts fail once it
// ran, and every command after it until Revive: the process died right
// after that write and wrote nothing more.
func CrashAfter(rdb *redis.Client, match func(redis.Cmder) bool) *Crash {
	h := &Crash{match: match, dies: true}
	h.armed.Store(true)
	rdb.AddHook(h)
	return h
}

// LoseReply makes rdb's first command that match accepts fail once it
// ran; the commands after it run as usual.
func LoseReply(rdb *redis.Client, match func(redis.Cmder) bool) *Crash {
	h := &Crash{match: match}
	h.armed.Store(true)
	rdb.AddHook(h)
	return h
}

// Revive lets commands through again, and fails t if the crash never
// happened: the test would prove nothing.
func (h *Crash) Revive(t testing.TB) {
	t.Helper()
	h.dead.Store(false)
	if h.armed.Load() {
		t.Fatal("no command matched where the crash was to happen: the test proves nothing")
	}
}

// crashed reports whether the command(s) just run make the crash happen.
func (h *Crash) crashed(cmds ...redis.Cmder) bool {
	if !slices.ContainsFunc(cmds, h.match) || !h.armed.CompareAndSwap(true, false) {
		return false
	}
	h.dead.Store(h.dies)
	return true
}

func (h *Crash) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *Crash) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			return ErrCrashed
		}
		err := next(ctx, cmd)
		if err == nil && h.crashed(cmd) {
			return ErrCrashed
		}
		return err
	}
}

func (h *Crash) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			return ErrCrashed
		}
		err := next(ctx, cmds)
		if err == nil && h.crashed(cmds...) {
			return ErrCrashed
		}
		return err
	}
}

// Write matches a command named name (lower case) whose key (first
// argument) contains part.
func Write(name, part string) func(redis.Cmder) bool {
	return func(cmd redis.Cmder) bool {
		args := cmd.Args()
		return cmd.Name() == name && len(args) > 1 && strings.Contains(fmt.Sprint(args[1]), part)
	}
}

// Touching matches a command named name (lower case) one of whose
// arguments is key.
func Touching(name, key string) func(redis.Cmder) bool {
	return func(cmd redis.Cmder) bool {
		return cmd.Name() == name && slices.ContainsFunc(cmd.Args()[1:], func(a any) bool { return a == key })
	}
}
