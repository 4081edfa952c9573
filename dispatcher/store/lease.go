package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// renewScript extends a lease if the holder still holds it. KEYS: lease.
// ARGV: holder, ttl ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript drops a lease if the holder still holds it. KEYS: lease.
// ARGV: holder.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// A Lease is held by one process at a time, for leadership (the
// scheduler). Each new holder gets a fencing token that grows with each
// new leader, so a paused old leader can tell it is stale.
type Lease struct {
	s     *Store
	key   string
	epoch string
}

// Lease returns the lease named name.
func (s *Store) Lease(name string) Lease {
	return Lease{s: s, key: s.Key(name, "lease"), epoch: s.Key(name, "epoch")}
}

// Acquire takes the lease for ttl for id, with a new fencing token; it
// returns the holder value ("id:token"), or "" when another holds it.
func (l Lease) Acquire(ctx context.Context, id string, ttl time.Duration) (string, error) {
	token, err := l.s.Redis.Incr(ctx, l.epoch).Result()
	if err != nil {
		return "", err
	}
	h := id + ":" + strconv.FormatInt(token, 10)
	ok, err := l.s.Redis.SetNX(ctx, l.key, h, ttl).Result()
	if err != nil || !ok {
		return "", err
	}
	return h, nil
}

// Renew extends the lease for ttl; it reports false when holder no
// longer holds it.
func (l Lease) Renew(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, l.s.Redis, []string{l.key}, holder, ttl.Milliseconds()).Int()
	return n == 1, err
}

// Held reports whether holder holds the lease now: the fence checked
// before each act of the leader.
func (l Lease) Held(ctx context.Context, holder string) (bool, error) {
	v, err := l.s.Redis.Get(ctx, l.key).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return v == holder, err
}

// Release drops the lease if holder holds it, so that another process
// takes over at once.
func (l Lease) Release(ctx context.Context, holder string) error {
	return releaseScript.Run(ctx, l.s.Redis, []string{l.key}, holder).Err()
}

// Lock takes the lock called name for ttl, for one operation that must not
// run twice at once (starting a campaign). It returns a release func, or
// nil when another holds the lock. A holder that dies leaves it to expire.
func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (release func(context.Context), err error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := s.Key("lock", name)
	ok, err := s.Redis.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return nil, err
	}
	return func(ctx context.Context) { _ = releaseScript.Run(ctx, s.Redis, []string{key}, token).Err() }, nil
}
