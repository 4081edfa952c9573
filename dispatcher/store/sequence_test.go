package store

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

func testEnrolment(contact string, at time.Time) *dispatcher.Enrolment {
	return &dispatcher.Enrolment{Sequence: "welcome", Contact: contact, Version: 1, Trigger: dispatcher.TriggerAPI,
		State: dispatcher.EnrolmentActive, At: at, Since: at, StartedAt: at}
}

// An enrolment is written once per pass, saved only over what was read,
// popped with a lease, and erased with its due entry.
func TestEnrolmentLifecycle(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	e := testEnrolment("c1", testNow)
	e.Data = map[string]any{"code": "W10"}
	r, created, err := s.Enrol(ctx, e, false)
	if err != nil || !created || r.N != 1 {
		t.Fatalf("enrol: %+v %v %v", r, created, err)
	}
	if again, created, err := s.Enrol(ctx, testEnrolment("c1", testNow), true); err != nil || created || again.N != 1 {
		t.Fatalf("enrolled twice while active: %+v %v %v", again, created, err)
	}
	// The data is sealed in Redis and opens on reading.
	raw, err := s.Redis.HGet(ctx, s.enrolmentsKey("c1"), "welcome").Result()
	if err != nil || strings.Contains(raw, "W10") {
		t.Fatalf("stored %q %v", raw, err)
	}
	got, err := s.Enrolment(ctx, "c1", "welcome")
	if err != nil || got.Data["code"] != "W10" {
		t.Fatalf("read %+v %v", got, err)
	}

	// Popped: the entry moves a lease ahead; a second pop finds nothing.
	ids, err := s.PopDueEnrolments(ctx, "welcome", testNow, time.Minute, 10)
	if err != nil || len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("pop: %v %v", ids, err)
	}
	if ids, _ := s.PopDueEnrolments(ctx, "welcome", testNow, time.Minute, 10); len(ids) != 0 {
		t.Fatalf("popped again within the lease: %v", ids)
	}
	if ids, _ := s.PopDueEnrolments(ctx, "welcome", testNow.Add(time.Minute), time.Minute, 10); len(ids) != 1 {
		t.Fatalf("not popped again after the lease: %v", ids)
	}

	// A stale record is not saved.
	stale := *got
	got.Step, got.At = 1, testNow.Add(48*time.Hour)
	if ok, err := s.SaveEnrolment(ctx, got); !ok || err != nil {
		t.Fatalf("save: %v %v", ok, err)
	}
	stale.Step = 7
	if ok, err := s.SaveEnrolment(ctx, &stale); ok || err != nil {
		t.Fatalf("stale save: %v %v", ok, err)
	}
	if score, _ := s.Redis.ZScore(ctx, s.seqDueKey("welcome"), "c1").Result(); int64(score) != ms(got.At) {
		t.Fatalf("due at %v, want %v", score, ms(got.At))
	}

	// Ended, then enrolled again when the sequence allows it.
	got.State, got.Reason = dispatcher.EnrolmentStopped, dispatcher.StopTag
	if ok, err := s.SaveEnrolment(ctx, got); !ok || err != nil {
		t.Fatalf("stop: %v %v", ok, err)
	}
	if n, _ := s.Redis.ZCard(ctx, s.seqDueKey("welcome")).Result(); n != 0 {
		t.Fatalf("an ended enrolment is still due")
	}
	if r, created, _ := s.Enrol(ctx, testEnrolment("c1", testNow), false); created || r.N != 1 {
		t.Fatalf("re-enrolled without reenrol: %+v", r)
	}
	if r, created, _ := s.Enrol(ctx, testEnrolment("c1", testNow), true); !created || r.N != 2 {
		t.Fatalf("reenrol: %+v %v", r, created)
	}
	active, stats, err := s.SequenceStats(ctx, "welcome")
	if err != nil || active != 1 || stats["enrolled"] != 2 || stats["stopped:stop_tag"] != 1 {
		t.Fatalf("stats %d %v %v", active, stats, err)
	}

	if n, err := s.EraseEnrolments(ctx, "c1"); n != 1 || err != nil {
		t.Fatalf("erase: %d %v", n, err)
	}
	if n, _ := s.Redis.Exists(ctx, s.enrolmentsKey("c1")).Result(); n != 0 {
		t.Fatal("enrolments left after erasure")
	}
	if n, _ := s.Redis.ZCard(ctx, s.seqDueKey("welcome")).Result(); n != 0 {
		t.Fatal("due entry left after erasure")
	}
}

// A process that dies between an enrolment's record and its due entry
// leaves nothing stuck or counted twice: the entry goes first (an entry
// without its record is dropped when it fires), and an ended enrolment is
// counted by whoever takes its entry out, once.
func TestEnrolmentCrashWindows(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	due := s.seqDueKey("welcome")

	// The record written, the process gone before its entry: a retry
	// of the enrolment files it.
	e := testEnrolment("c1", testNow)
	e.N = 1
	enc, err := s.encodeEnrolment(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Redis.HSet(ctx, s.enrolmentsKey("c1"), "welcome", enc).Err(); err != nil {
		t.Fatal(err)
	}
	if _, created, err := s.Enrol(ctx, testEnrolment("c1", testNow), false); err != nil || created {
		t.Fatalf("enrol again: %v %v", created, err)
	}
	if score, err := s.Redis.ZScore(ctx, due, "c1").Result(); err != nil || int64(score) != ms(testNow) {
		t.Fatalf("the retry left the enrolment without its due entry: %v %v", score, err)
	}

	// Ended, the record saved and the process gone before its entry went:
	// the next pop's refile takes it out and counts it, and a second
	// filing counts nothing more.
	r, err := s.Enrolment(ctx, "c1", "welcome")
	if err != nil {
		t.Fatal(err)
	}
	r.State, r.Reason, r.At = dispatcher.EnrolmentCompleted, "", time.Time{}
	end, _ := s.encodeEnrolment(&r.Enrolment)
	if err := s.Redis.HSet(ctx, s.enrolmentsKey("c1"), "welcome", end).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.RefileEnrolment(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	active, stats, err := s.SequenceStats(ctx, "welcome")
	if err != nil || active != 0 || stats["completed"] != 1 {
		t.Fatalf("stats %d %v %v, want 0 active and 1 completed", active, stats, err)
	}
}

// BenchmarkEnrolmentsWaiting enrols 100,000 contacts in a sequence and
// reports what they cost Redis while they wait (MEMORY USAGE of their
// records, their due entries and the counters, per enrolment), and how
// fast their steps are popped when all come due at once, in batches of
// 500:
//
//	go test ./dispatcher/store -run '^$' -bench EnrolmentsWaiting -benchtime 1x
func BenchmarkEnrolmentsWaiting(b *testing.B) {
	const n = 100_000
	for range b.N {
		b.StopTimer()
		s, ctx := setup(b)
		at := testNow.Add(-time.Minute)
		for i := range n {
			e := testEnrolment("c-"+strconv.Itoa(100000+i), at)
			e.Step, e.At = 1, at
			if _, _, err := s.Enrol(ctx, e, false); err != nil {
				b.Fatal(err)
			}
		}
		var bytes int64
		keys := []string{s.seqDueKey("welcome"), s.seqStatsKey("welcome")}
		for i := range n {
			keys = append(keys, s.enrolmentsKey("c-"+strconv.Itoa(100000+i)))
		}
		cmds, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.MemoryUsage(ctx, k, 0)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cmds {
			bytes += c.(*redis.IntCmd).Val()
		}
		b.ReportMetric(float64(bytes)/n, "redis-bytes/enrolment")
		b.StartTimer()
		start := time.Now()
		popped := 0
		for {
			ids, err := s.PopDueEnrolments(ctx, "welcome", testNow, time.Minute, 500)
			if err != nil {
				b.Fatal(err)
			}
			popped += len(ids)
			if len(ids) < 500 {
				break
			}
		}
		if popped != n {
			b.Fatalf("popped %d of %d", popped, n)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "pops/s")
	}
}
