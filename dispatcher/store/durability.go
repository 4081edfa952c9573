package store

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Durability is what a Redis server says of how well it keeps an
// acknowledged write: its replicas and its append-only file.
type Durability struct {
	// Replicas is the number of replicas connected to the master.
	Replicas int
	// MinReplicasToWrite is the server's min-replicas-to-write.
	MinReplicasToWrite int
	// AppendOnly and AppendFsync are the server's appendonly and
	// appendfsync settings; Unverified when CONFIG GET was refused (a
	// managed Redis), and then both are unknown.
	AppendOnly  bool
	AppendFsync string
	Unverified  bool
}

// CheckDurability asks the Redis behind rdb how it keeps acknowledged
// writes: INFO replication for its replicas, CONFIG GET for its
// persistence. A refused CONFIG GET is not an error: the result says it
// could not verify.
func CheckDurability(ctx context.Context, rdb Client) (Durability, error) {
	var d Durability
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return d, fmt.Errorf("durability: INFO replication: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "connected_slaves:"); ok {
			d.Replicas, _ = strconv.Atoi(v)
		}
	}
	// Only the settings read: "*" would fetch the passwords too.
	cfg := map[string]string{}
	for _, pattern := range []string{"append*", "min-replicas-to-write"} {
		m, err := rdb.ConfigGet(ctx, pattern).Result()
		if err != nil {
			d.Unverified = true
			return d, nil
		}
		for k, v := range m {
			cfg[k] = v
		}
	}
	d.AppendOnly = cfg["appendonly"] == "yes"
	d.AppendFsync = cfg["appendfsync"]
	d.MinReplicasToWrite, _ = strconv.Atoi(cfg["min-replicas-to-write"])
	return d, nil
}

// ClaimReplicas is how many replicas a send claim should wait for: one
// when the server has replicas (Sentinel promotes the most up-to-date
// replica, so a claim one replica holds survives a failover), else none.
func (d Durability) ClaimReplicas() int {
	if d.Replicas > 0 {
		return 1
	}
	return 0
}

// ClaimsDurable reports whether a send claim survives a crash of the
// server once it is acknowledged: it waits for a replica, or the server
// fsyncs its append-only file before it answers.
func (d Durability) ClaimsDurable() bool {
	return d.ClaimReplicas() > 0 || (d.AppendOnly && d.AppendFsync == "always")
}

// Warning is what an operator should read at start when claims are not
// durable, or "" when they are.
func (d Durability) Warning() string {
	switch {
	case d.ClaimsDurable():
		return ""
	case d.Unverified:
		return "cannot verify that Redis keeps acknowledged writes (CONFIG GET refused): unless it runs with appendonly yes and appendfsync always, or has a replica, a crash of Redis can send again the messages of its last unsynced writes"
	case !d.AppendOnly:
		return "Redis runs without an append-only file and without replicas: a crash of Redis forgets which messages left and sends them again; set appendonly yes and appendfsync always, or add a replica (Sentinel)"
	default:
		return "Redis fsyncs its append-only file " + cmpFsync(d.AppendFsync) + ", without replicas: a crash of Redis can send again up to a second of messages; set appendfsync always, or add a replica (Sentinel)"
	}
}

func cmpFsync(v string) string {
	if v == "everysec" {
		return "once a second (appendfsync everysec)"
	}
	return "when the OS decides (appendfsync " + v + ")"
}
