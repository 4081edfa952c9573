package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is one test's share of a Redis Cluster.
type Cluster struct {
	// URL reaches the cluster in the form MISSIVE_REDIS_URL takes:
	// redis-cluster://host:port?addr=host:port&addr=host:port.
	URL string
	// Addrs are the masters' addresses.
	Addrs []string
	// Prefix starts every key and queue name the test may use.
	Prefix string
	// Client is a cluster client on Addrs, closed when the test ends.
	Client *redis.ClusterClient
}

// clusterMasters is how many masters a launched cluster has: enough that
// keys and queues spread over more than one shard.
const clusterMasters = 3

var (
	clusterOnce  sync.Once
	clusterAddrs []string
	clusterKind  string // "url" or "server"; "" when none can be had
	clusterErr   error
)

// NewCluster returns a Redis Cluster for t: the one that
// MISSIVE_TEST_REDIS_CLUSTER_URL names (redis-cluster://... as above),
// else three redis-server masters from PATH, started in cluster mode once
// per test binary and killed with it. It skips t when there is no
// redis-server (the in-process Redis has no cluster mode) and fails t when
// the cluster does not start.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	clusterOnce.Do(startCluster)
	if clusterErr != nil {
		t.Fatalf("redistest: Redis Cluster: %v", clusterErr)
	}
	if clusterKind == "" {
		t.Skip("redistest: no MISSIVE_TEST_REDIS_CLUSTER_URL and no redis-server on PATH: the Redis Cluster tests need one")
	}
	c := &Cluster{
		URL:    "redis-cluster://" + clusterAddrs[0] + "?addr=" + strings.Join(clusterAddrs[1:], "&addr="),
		Addrs:  clusterAddrs,
		Prefix: newPrefix(),
		Client: redis.NewClusterClient(&redis.ClusterOptions{Addrs: clusterAddrs}),
	}
	if err := c.Client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: Redis Cluster at %v: %v", clusterAddrs, err)
	}
	t.Cleanup(func() {
		c.flush(context.Background())
		_ = c.Client.Close()
	})
	return c
}

// flush deletes the keys the test owned on every master: its prefix and
// asynq's keys for queues named after it.
func (c *Cluster) flush(ctx context.Context) {
	_ = c.Client.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		unlinkOwned(ctx, node, c.Prefix)
		return nil
	})
	forgetQueues(ctx, c.Client, c.Prefix)
}

func startCluster() {
	if u := os.Getenv("MISSIVE_TEST_REDIS_CLUSTER_URL"); u != "" {
		o, err := redis.ParseClusterURL(strings.Replace(u, "redis-cluster://", "redis://", 1))
		if err != nil {
			clusterErr = fmt.Errorf("MISSIVE_TEST_REDIS_CLUSTER_URL: %w", err)
			return
		}
		clusterAddrs, clusterKind = o.Addrs, "url"
		return
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return
	}
	addrs := make([]string, clusterMasters)
	for i := range addrs {
		if addrs[i], err = startClusterNode(path); err != nil {
			clusterErr = err
			return
		}
	}
	if err := joinCluster(addrs); err != nil {
		clusterErr = err
		return
	}
	clusterAddrs, clusterKind = addrs, "server"
}

// clusterPort returns a free port whose cluster bus port (port + 10000)
// is free too: redis-server before 7.0 cannot be told another bus port.
func clusterPort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			_ = l.Close()
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = bus.Close()
		return port, nil
	}
	return 0, errors.New("no free pair of ports for a cluster node")
}

// startClusterNode runs one redis-server in cluster mode for the life of
// this process and waits until it answers.
func startClusterNode(path string) (string, error) {
	port, err := clusterPort()
	if err != nil {
		return "", err
	}
	s, err := startServer(path, port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "5000")
	if err != nil {
		return "", err
	}
	return s.Addr, nil
}

// joinCluster gives each master an equal share of the 16384 slots, makes
// them meet, and waits until every one of them sees the cluster ok: the
// work redis-cli --cluster create does, without needing redis-cli.
func joinCluster(addrs []string) error {
	ctx := context.Background()
	nodes := make([]*redis.Client, len(addrs))
	for i, a := range addrs {
		nodes[i] = redis.NewClient(&redis.Options{Addr: a})
		defer nodes[i].Close()
	}
	const slots = 16384
	for i, n := range nodes {
		from, to := i*slots/len(nodes), (i+1)*slots/len(nodes)
		ss := make([]int, 0, to-from)
		for s := from; s < to; s++ {
			ss = append(ss, s)
		}
		if err := n.ClusterAddSlots(ctx, ss...).Err(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTS on %s: %w", addrs[i], err)
		}
	}
	for _, a := range addrs[1:] {
		host, port, _ := net.SplitHostPort(a)
		if err := nodes[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", a, err)
		}
	}
	err := poll(30*time.Second, func() bool {
		for _, n := range nodes {
			info, err := n.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(nodes))) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return errors.New("the masters did not agree on the cluster within 30s")
	}
	return nil
}

// poll calls cond until it holds, or fails after timeout.
func poll(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
