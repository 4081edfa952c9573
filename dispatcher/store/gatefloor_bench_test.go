package store

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/throttle/redistest"
)

// BenchmarkGateRedisFloor measures the least Redis CPU a gate can spend on
// a recipient, whatever its design: no script, nothing atomic, no counts,
// no queue, only the reads a decision needs and the writes it must leave,
// pipelined in batches of 1,000 recipients on a throw-away redis-server.
// It tells what recipients/s one Redis core can gate at best (1e6 over
// redis-us/recipient); Missive's gate (missive bench -only gate) does
// more: each decision created once and counted in one script call, the
// cap checked and recorded atomically, the sends enqueued.
//
//	go test ./dispatcher/store -run '^$' -bench GateRedisFloor -benchtime 200x -count 5
//
// "reads": the contact and its suppression entry (one MGET a batch), its
// consent (HGET) and pace (HMGET); "one-read": consent and pace held in
// the contact's record, read by the same MGET. Both then write the
// decision as a field of a per-run hash (HSETNX) and the cap entry
// (ZADD and PEXPIRE on the contact's cap key).
func BenchmarkGateRedisFloor(b *testing.B) {
	for _, mode := range []string{"reads", "one-read"} {
		b.Run(mode, func(b *testing.B) { gateFloor(b, mode == "reads") })
	}
}

func gateFloor(b *testing.B, separateReads bool) {
	rdb := ownRedis(b)
	ctx := context.Background()
	const batch = 1000
	n := b.N * batch
	id := func(i int) string { return "c" + strconv.Itoa(i) }
	record := strings.Repeat("x", 240) // a sealed contact with an address, a tag and an attribute: 233 bytes
	for i := 0; i < n; i += batch {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := i; j < i+batch; j++ {
				p.Set(ctx, "ct:"+id(j), record, 0)
				if separateReads {
					p.HSet(ctx, "cs:"+id(j), "email:news", "granted")
					p.HSet(ctx, "pf:"+id(j), "pause", "0")
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	r0 := redistest.CPU(b, rdb)
	b.ResetTimer()
	for i := 0; i < n; i += batch {
		keys := make([]string, 0, 2*batch)
		for j := i; j < i+batch; j++ {
			keys = append(keys, "ct:"+id(j), "sp:"+id(j))
		}
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.MGet(ctx, keys...)
			for j := i; j < i+batch && separateReads; j++ {
				p.HGet(ctx, "cs:"+id(j), "email:news")
				p.HMGet(ctx, "pf:"+id(j), "pause", "hours")
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := i; j < i+batch; j++ {
				p.HSetNX(ctx, "run:sends", id(j), "queued|email|news|t|1700000000000")
				p.ZAdd(ctx, "cap:"+id(j), redis.Z{Score: 1700000000000, Member: "r1:" + id(j)})
				p.PExpire(ctx, "cap:"+id(j), 7*24*time.Hour)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((redistest.CPU(b, rdb)-r0)*1e6/float64(n), "redis-us/recipient")
}
