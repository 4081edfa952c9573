package store

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/throttle/redistest"
)

// procCPU is the CPU seconds, system and user, this process has used.
func procCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// ownRedis is a client of a throw-away redis-server, for benchmarks that
// read its CPU use: no other test's commands count in it.
func ownRedis(b *testing.B) *redis.Client {
	srv, err := redistest.StartServer("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	opt, _ := redis.ParseURL(srv.URL)
	rdb := redis.NewClient(opt)
	b.Cleanup(func() { rdb.Close() })
	return rdb
}

// BenchmarkSettleChunkCPU claims then settles chunks of 8 sends, with
// their analytics events, as the send path does, on a throw-away
// redis-server of its own, and reports the CPU Redis and the process
// spent per send:
//
//	go test ./dispatcher/store -run '^$' -bench SettleChunkCPU -benchtime 2500x -count 10
func BenchmarkSettleChunkCPU(b *testing.B) {
	rdb := ownRedis(b)
	s := NewStore(rdb, "bx", make32('s'), time.Now, time.Hour)
	ctx := context.Background()
	const chunk = 8
	n := b.N * chunk
	run := "r1"
	rdb.HSet(ctx, s.RunKey(run), "state", "sending")
	var ds []Decision
	for i := range n {
		c := fmt.Sprintf("c%07d", i)
		ds = append(ds, Decision{Send: dispatcher.SendID(run, c, channels.Email), Contact: c, Channel: channels.Email, Topic: "news", Template: "t", State: dispatcher.StateQueued})
	}
	if err := s.RecordDecisions(ctx, run, ds, time.Hour); err != nil {
		b.Fatal(err)
	}
	r0, p0 := redistest.CPU(b, rdb), procCPU()
	b.ResetTimer()
	for i := range b.N {
		part := ds[i*chunk : (i+1)*chunk]
		var claim, settle []Transition
		var evs []Event
		for _, d := range part {
			claim = append(claim, Transition{Send: d.Send, From: "queued,deferred", To: dispatcher.StateSending, Deadline: time.Now().Add(time.Hour), UnlessHeld: true, Fields: []any{"attempts", 1, "claim", "0123456789abcdef"}})
			settle = append(settle, Transition{Send: d.Send, From: dispatcher.StateSending, To: dispatcher.StateSent, Fields: []any{"provider", "<" + d.Send + "@x>", "dom", "example.com"}})
			evs = append(evs, Event{Run: run, Topic: "news", Metric: MetricEmailSent, Domain: "example.com"})
		}
		if _, err := s.TransitionSends(ctx, claim); err != nil {
			b.Fatal(err)
		}
		if _, err := s.TransitionSends(ctx, settle, evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((redistest.CPU(b, rdb)-r0)*1e6/float64(n), "redis-us/send")
	b.ReportMetric((procCPU()-p0)*1e6/float64(n), "proc-us/send")
}
