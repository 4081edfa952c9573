// Package redistest gives tests a real Redis server and a key prefix of
// their own.
//
// The server is, in order of preference: the one at MISSIVE_TEST_REDIS_URL;
// a throw-away redis-server from PATH, started once per test binary on a
// free port and stopped with it; the in-process Redis (miniredis), with a
// line saying so. Each call to New returns a fresh prefix; the test's keys
// (and asynq queues named after the prefix) are deleted when it ends, and
// nothing else is touched. NewCluster does the same on a Redis Cluster of
// three masters. StartServer starts a throw-away redis-server outside a
// test (missive bench).
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Redis is one test's share of a Redis server.
type Redis struct {
	// URL reaches the server (redis://host:port/db).
	URL string
	// Options are the go-redis options for URL.
	Options *redis.Options
	// Prefix starts every key and queue name the test may use.
	Prefix string
	// Client is a client on URL, closed when the test ends.
	Client *redis.Client
}

var (
	once    sync.Once
	baseURL string
	kind    string
	initErr error
)

// newPrefix returns a key prefix of a test's own.
func newPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// New returns a Redis for t, failing t when none can be had.
func New(t testing.TB) *Redis {
	t.Helper()
	once.Do(start)
	if initErr != nil {
		t.Fatalf("redistest: %v", initErr)
	}
	opts, err := redis.ParseURL(baseURL)
	if err != nil {
		t.Fatalf("redistest: MISSIVE_TEST_REDIS_URL: %v", err)
	}
	r := &Redis{
		URL:     baseURL,
		Options: opts,
		Prefix:  newPrefix(),
		Client:  redis.NewClient(opts),
	}
	ctx := context.Background()
	if err := r.Client.Ping(ctx).Err(); err != nil {
		t.Fatalf("redistest: %s Redis at %s: %v", kind, opts.Addr, err)
	}
	t.Cleanup(func() {
		r.flush(context.Background())
		_ = r.Client.Close()
	})
	return r
}

// Kind says which server the tests run against: "url", "server" or
// "in-process".
func Kind() string { once.Do(start); return kind }

// flush deletes the keys the test owned: its prefix and asynq's keys for
// queues named after it.
func (r *Redis) flush(ctx context.Context) {
	unlinkOwned(ctx, r.Client, r.Prefix)
	forgetQueues(ctx, r.Client, r.Prefix)
}

// unlinkOwned deletes from one server the keys of the test with prefix:
// its own and asynq's keys for queues named after it. One key per UNLINK,
// pipelined, since a cluster node refuses keys of several slots in one.
func unlinkOwned(ctx context.Context, node *redis.Client, prefix string) {
	for _, pattern := range []string{prefix + "*", "asynq:{" + prefix + "*"} {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		pipe := node.Pipeline()
		for iter.Next(ctx) {
			pipe.Unlink(ctx, iter.Val())
			if pipe.Len() == 500 {
				_, _ = pipe.Exec(ctx)
			}
		}
		_, _ = pipe.Exec(ctx)
	}
}

// forgetQueues takes the test's queues out of asynq's list of queues.
func forgetQueues(ctx context.Context, c redis.Cmdable, prefix string) {
	queues, _ := c.SMembers(ctx, "asynq:queues").Result()
	for _, q := range queues {
		if strings.HasPrefix(q, prefix) {
			c.SRem(ctx, "asynq:queues", q)
		}
	}
}

func start() {
	if u := os.Getenv("MISSIVE_TEST_REDIS_URL"); u != "" {
		baseURL, kind = u, "url"
		return
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		srv, err := StartServer(path)
		if err == nil {
			baseURL, kind = srv.URL, "server"
			return
		}
		fmt.Fprintf(os.Stderr, "redistest: could not start %s (%v)\n", path, err)
	}
	m, err := miniredis.Run()
	if err != nil {
		initErr = fmt.Errorf("start in-process Redis: %w", err)
		return
	}
	fmt.Fprintln(os.Stderr, "redistest: no MISSIVE_TEST_REDIS_URL and no redis-server on PATH: falling back to the in-process Redis, which is not what CI proves")
	baseURL, kind = "redis://"+m.Addr()+"/0", "in-process"
}

// Server is a throw-away redis-server: no persistence, bound to
// 127.0.0.1 on a free port, its files in a temporary folder.
type Server struct {
	// Addr is host:port and URL redis://host:port/0.
	Addr, URL string
	stop      chan struct{}
	stopped   chan error
	dir       string
	once      sync.Once
}

// StartServer runs the redis-server at path (from PATH when empty) and
// waits until it answers. Close stops it; the server also gets SIGKILL
// when this process dies, since the thread that started it is locked and
// ends only when Close is called or the process exits.
func StartServer(path string) (*Server, error) {
	if path == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return nil, fmt.Errorf("no redis-server on PATH: %w", err)
		}
		path = p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return startServer(path, port)
}

// startServer runs the redis-server at path on port, in a folder of its
// own, with the settings of a throw-away server and then args, and waits
// until it answers. The server stops on Close or when this process dies.
func startServer(path string, port int, args ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "missive-redis-")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, stop: make(chan struct{}), stopped: make(chan error, 1)}
	s.URL = "redis://" + s.Addr + "/0"
	args = append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"}, args...)
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and
		// Pdeathsig then kills the server if it still runs.
		runtime.LockOSThread()
		cmd := exec.Command(path, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		<-s.stop
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		s.stopped <- nil
	}()
	if err := <-started; err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	if err := poll(10*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil }); err != nil {
		s.Close()
		return nil, fmt.Errorf("redis-server on %s did not answer", s.Addr)
	}
	return s, nil
}

// Close stops the server and removes its folder. It may be called more
// than once.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.stop)
		<-s.stopped
		_ = os.RemoveAll(s.dir)
	})
}
