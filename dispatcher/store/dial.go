package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dial connects to the Redis that url names and checks that it answers:
// redis:// or rediss:// for one server, redis-sentinel:// (or
// rediss-sentinel://) for Sentinel, redis-cluster:// (or rediss-cluster://)
// for a Cluster, each with go-redis's URL options. Errors never quote the
// URL, which may hold a password.
func Dial(ctx context.Context, url string) (Client, error) {
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
