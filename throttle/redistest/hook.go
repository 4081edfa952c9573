package redistest

import (
	"context"

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
