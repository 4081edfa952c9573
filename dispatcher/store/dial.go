package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher/metrics"
)

// DialOption changes what Dial sets up.
type DialOption func(*dialOptions)

type dialOptions struct {
	metrics *metrics.Metrics
}

// WithMetrics counts the client's failed commands in m
// (missive_redis_errors_total).
func WithMetrics(m *metrics.Metrics) DialOption {
	return func(o *dialOptions) { o.metrics = m }
}

// errorHook counts failed commands, alone or in a pipeline. A missing key
// (redis.Nil), a transaction that lost its WATCH (redis.TxFailedErr), a
// script Redis must load first (NOSCRIPT, answered by loading it) and a
// caller that gave up (context.Canceled) are the protocol at work, not
// errors of Redis.
type errorHook struct{ m *metrics.Metrics }

// DialHook counts nothing: a connection that cannot be made fails the
// command that wanted it, counted once there whatever the retries.
func (h errorHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h errorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		// The reply's error comes back from next; the command holds it
		// only later.
		err := next(ctx, cmd)
		h.countCmd(cmd, cmp.Or(err, cmd.Err()))
		return err
	}
}

func (h errorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		// A pipeline that could not be sent fails each of its commands
		// with one cause: counted once.
		if isConnErr(err) {
			h.count(err)
			return err
		}
		for _, cmd := range cmds {
			h.countCmd(cmd, cmd.Err())
		}
		return err
	}
}

// countCmd counts cmd's failure err, but for the handshake go-redis makes
// on each new connection (HELLO, CLIENT SETINFO, CLIENT
// MAINT_NOTIFICATIONS), whose refusal by an older Redis it expects and
// ignores. Missive sends no CLIENT command of its own.
func (h errorHook) countCmd(cmd redis.Cmder, err error) {
	if name := cmd.Name(); name == "hello" || name == "client" {
		return
	}
	h.count(err)
}

func (h errorHook) count(err error) {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, redis.TxFailedErr), errors.Is(err, context.Canceled),
		redis.HasErrorPrefix(err, "NOSCRIPT"):
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		h.m.RedisError("timeout")
	case isConnErr(err):
		h.m.RedisError("network")
	default:
		h.m.RedisError("server")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isConnErr reports whether err is a failure to reach Redis rather than
// an error reply.
func isConnErr(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		return false // an error reply
	}
	return true
}

// Dial connects to the Redis that url names and checks that it answers:
// redis:// or rediss:// for one server, redis-sentinel:// (or
// rediss-sentinel://) for Sentinel, redis-cluster:// (or rediss-cluster://)
// for a Cluster, each with go-redis's URL options. Errors never quote the
// URL, which may hold a password. With metrics (WithMetrics), every failed
// command is counted.
func Dial(ctx context.Context, url string, opts ...DialOption) (Client, error) {
	var o dialOptions
	for _, f := range opts {
		f(&o)
	}
	var rdb Client
	scheme, rest, _ := strings.Cut(url, "://")
	switch scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(url)
		if err != nil {
			return nil, err
		}
		rdb = redis.NewClient(o)
	case "redis-sentinel", "rediss-sentinel":
		o, err := redis.ParseFailoverURL(strings.TrimSuffix(scheme, "-sentinel") + "://" + rest)
		if err != nil {
			return nil, err
		}
		rdb = redis.NewFailoverClient(o)
	case "redis-cluster", "rediss-cluster":
		o, err := redis.ParseClusterURL(strings.TrimSuffix(scheme, "-cluster") + "://" + rest)
		if err != nil {
			return nil, err
		}
		rdb = redis.NewClusterClient(o)
	default:
		return nil, errors.New("scheme must be redis, rediss, redis-sentinel or redis-cluster")
	}
	if o.metrics != nil {
		rdb.AddHook(errorHook{o.metrics})
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("cannot reach Redis: %w", err)
	}
	return rdb, nil
}

// WipePrefix deletes every key under prefix, and the asynq queues named
// after it, and nothing else: the demo's reset on a real Redis.
func WipePrefix(ctx context.Context, rdb Client, prefix string) error {
	for _, pattern := range []string{prefix + ":*", "asynq:{" + prefix + ":*"} {
		err := scanKeys(ctx, rdb, pattern, func(keys []string) error {
			for _, k := range keys {
				if err := rdb.Unlink(ctx, k).Err(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
