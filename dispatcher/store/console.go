package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// ConsoleUser is an account of the marketer console. The password is kept
// only as its hash (the console hashes it); Role is admin, marketer or
// read-only; Timezone, when set, is the IANA zone the user reads and
// writes times in.
type ConsoleUser struct {
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	Timezone     string    `json:"timezone,omitempty"`
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ConsoleSession is a signed-in browser. It is found by the hash of its
// id: the id itself, which the cookie carries, is never stored.
type ConsoleSession struct {
	User    string
	Created time.Time
	Seen    time.Time
}

func (s *Store) consoleUsersKey() string { return s.Key("console", "users") }

func (s *Store) consoleSessionKey(idHash string) string { return s.Key("console", "session", idHash) }

func (s *Store) consoleUserSessionsKey(user string) string {
	return s.Key("console", "usersessions", user)
}

// consoleFailKey names the failures of a subject, by a keyed hash: a
// client address cannot be guessed back from the key.
func (s *Store) consoleFailKey(subject string) string {
	m := hmac.New(sha256.New, DeriveKey(s.secret, "console-fail"))
	m.Write([]byte(subject))
	return s.Key("console", "fail", hex.EncodeToString(m.Sum(nil)[:20]))
}

// AddConsoleUser stores a new account. Returns an error with code
// conflict when the name is taken.
func (s *Store) AddConsoleUser(ctx context.Context, u *ConsoleUser) error {
	u.CreatedAt = s.now().UTC()
	u.UpdatedAt = u.CreatedAt
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	ok, err := s.Redis.HSetNX(ctx, s.consoleUsersKey(), u.Name, b).Result()
	if err != nil {
		return fmt.Errorf("add console user: %w", err)
	}
	if !ok {
		return dispatcher.Conflict("user %q exists", u.Name)
	}
	return nil
}

// UpdateConsoleUser replaces an existing account, and signs its sessions
// out when signOut is set (a new password, a new role). Returns an error
// with code not_found when there is no such account.
func (s *Store) UpdateConsoleUser(ctx context.Context, u *ConsoleUser, signOut bool) error {
	old, err := s.ConsoleUser(ctx, u.Name)
	if err != nil {
		return err
	}
	u.CreatedAt, u.UpdatedAt = old.CreatedAt, s.now().UTC()
	if err := s.putJSON(ctx, "console:users", u.Name, u); err != nil {
		return fmt.Errorf("update console user: %w", err)
	}
	if signOut {
		return s.DeleteConsoleSessions(ctx, u.Name)
	}
	return nil
}

// ConsoleUser returns an account or an error with code not_found.
func (s *Store) ConsoleUser(ctx context.Context, name string) (*ConsoleUser, error) {
	var u ConsoleUser
	return &u, s.getJSON(ctx, "console:users", name, "user", &u)
}

// ConsoleUsers lists the accounts by name.
func (s *Store) ConsoleUsers(ctx context.Context) ([]ConsoleUser, error) {
	return listJSON[ConsoleUser](ctx, s, "console:users")
}

// RemoveConsoleUser deletes an account and signs its sessions out.
// Returns an error with code not_found when there is no such account.
func (s *Store) RemoveConsoleUser(ctx context.Context, name string) error {
	n, err := s.Redis.HDel(ctx, s.consoleUsersKey(), name).Result()
	if err != nil {
		return fmt.Errorf("remove console user: %w", err)
	}
	if n == 0 {
		return dispatcher.NotFound("user")
	}
	return s.DeleteConsoleSessions(ctx, name)
}

// CreateConsoleSession stores a session under the hash of its id; it
// lasts idle unless touched.
func (s *Store) CreateConsoleSession(ctx context.Context, idHash string, sess ConsoleSession, idle time.Duration) error {
	key := s.consoleSessionKey(idHash)
	_, err := s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "user", sess.User, "created", ms(sess.Created), "seen", ms(sess.Seen))
		p.PExpire(ctx, key, idle)
		p.SAdd(ctx, s.consoleUserSessionsKey(sess.User), idHash)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create console session: %w", err)
	}
	return nil
}

// ConsoleSession returns the session whose id hashes to idHash, or an
// error with code not_found when it does not exist or expired.
func (s *Store) ConsoleSession(ctx context.Context, idHash string) (*ConsoleSession, error) {
	m, err := s.Redis.HGetAll(ctx, s.consoleSessionKey(idHash)).Result()
	if err != nil {
		return nil, fmt.Errorf("console session: %w", err)
	}
	if m["user"] == "" {
		return nil, dispatcher.NotFound("session")
	}
	created, _ := strconv.ParseInt(m["created"], 10, 64)
	seen, _ := strconv.ParseInt(m["seen"], 10, 64)
	return &ConsoleSession{User: m["user"], Created: time.UnixMilli(created).UTC(), Seen: time.UnixMilli(seen).UTC()}, nil
}

// TouchConsoleSession records activity on a session and makes it last
// idle more from now.
func (s *Store) TouchConsoleSession(ctx context.Context, idHash string, seen time.Time, idle time.Duration) error {
	key := s.consoleSessionKey(idHash)
	_, err := s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "seen", ms(seen))
		p.PExpire(ctx, key, idle)
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession signs one session out.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash string) error {
	user, err := s.Redis.HGet(ctx, s.consoleSessionKey(idHash), "user").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("delete console session: %w", err)
	}
	if err := s.Redis.Del(ctx, s.consoleSessionKey(idHash)).Err(); err != nil {
		return fmt.Errorf("delete console session: %w", err)
	}
	if user != "" {
		s.Redis.SRem(ctx, s.consoleUserSessionsKey(user), idHash)
	}
	return nil
}

// DeleteConsoleSessions signs out every session of user.
func (s *Store) DeleteConsoleSessions(ctx context.Context, user string) error {
	idx := s.consoleUserSessionsKey(user)
	hashes, err := s.Redis.SMembers(ctx, idx).Result()
	if err != nil {
		return fmt.Errorf("delete console sessions: %w", err)
	}
	keys := []string{idx}
	for _, h := range hashes {
		keys = append(keys, s.consoleSessionKey(h))
	}
	if err := s.Redis.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("delete console sessions: %w", err)
	}
	return nil
}

// ConsoleLockout returns how long sign-ins stay refused for subjects
// (an account name, a client address): the longest wait of those with
// at least limit failures in their window, or 0.
func (s *Store) ConsoleLockout(ctx context.Context, limit int64, subjects ...string) (time.Duration, error) {
	counts := make([]*redis.StringCmd, len(subjects))
	ttls := make([]*redis.DurationCmd, len(subjects))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sub := range subjects {
			counts[i] = p.Get(ctx, s.consoleFailKey(sub))
			ttls[i] = p.PTTL(ctx, s.consoleFailKey(sub))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("console lockout: %w", err)
	}
	var wait time.Duration
	for i := range subjects {
		n, _ := counts[i].Int64()
		if n >= limit {
			wait = max(wait, ttls[i].Val())
		}
	}
	return wait, nil
}

// failScript counts a failure and starts the window with the first one:
// the window does not slide, so a locked subject is free when it ends.
// KEYS: the failure counters. ARGV: window ms.
var failScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, ARGV[1]) end
end
return 1
`)

// RecordConsoleFailure counts a failed sign-in against each subject, for
// window from the first failure.
func (s *Store) RecordConsoleFailure(ctx context.Context, window time.Duration, subjects ...string) error {
	keys := make([]string, len(subjects))
	for i, sub := range subjects {
		keys[i] = s.consoleFailKey(sub)
	}
	if IsCluster(s.Redis) {
		// The counters live in slots of their own: one call each.
		for _, k := range keys {
			if err := failScript.Run(ctx, s.Redis, []string{k}, window.Milliseconds()).Err(); err != nil {
				return fmt.Errorf("record console failure: %w", err)
			}
		}
		return nil
	}
	if err := failScript.Run(ctx, s.Redis, keys, window.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("record console failure: %w", err)
	}
	return nil
}

// ClearConsoleFailures forgets the failures of subjects (an account that
// signed in).
func (s *Store) ClearConsoleFailures(ctx context.Context, subjects ...string) error {
	for _, sub := range subjects {
		if err := s.Redis.Del(ctx, s.consoleFailKey(sub)).Err(); err != nil {
			return fmt.Errorf("clear console failures: %w", err)
		}
	}
	return nil
}
