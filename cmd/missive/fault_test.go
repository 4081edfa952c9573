package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
)

// Each scenario runs a campaign of faultContacts messages with the shipped
// settings (send tasks of 100, 32 tasks at once per worker, 1000 emails/s,
// 4 SMTP connections), breaks something mid-run and checks the outcome.
const faultContacts = 3000

// durableRedis is the setting the guarantees rely on without replicas.
var durableRedis = []string{"--appendonly", "yes", "--appendfsync", "always"}

// A worker killed with SIGKILL mid-batch: its tasks come back to the other
// worker after asynq's lease, and only the messages it was handing over
// at that instant (a chunk of 8 per SMTP connection at most) are unknown,
// settled ambiguous, never sent again.
func TestFaultWorkerKilled(t *testing.T) {
	w, _ := faultWorld(t, durableRedis)
	w.seed(faultContacts, channels.Email)
	a := w.startWorker("worker-a")
	w.startWorker("worker-b")
	o := w.breakAt(faultContacts/3, a.kill)
	o.assertNoDuplicates(t)
	// Claims are taken once a connection is held, a chunk of 8 at a time:
	// a killed worker leaves at most 8 claimed, unsent messages per
	// connection of its pool. The other ambiguous ones left and were not
	// yet recorded sent.
	o.assertUnsentPerConnection(t, "a kill")
}

// A worker stopped with SIGTERM mid-batch while some messages hang at the
// relay (no answer after the data) past asynq's 20 s shutdown timeout: its
// other tasks go back to the queue at once and another worker sends them;
// the hanging messages are settled ambiguous, never sent again.
func TestFaultWorkerTerminated(t *testing.T) {
	w, _ := faultWorld(t, durableRedis)
	w.seed(faultContacts, channels.Email)
	// Early in the run, so that they hang when the signal comes.
	for i := range 8 {
		w.smtp.HangAfterData(fmt.Sprintf("c%05d@example.test", 10+i*20))
	}
	a := w.startWorker("worker-a")
	w.startWorker("worker-b")
	o := w.breakAt(faultContacts/3, func() { a.signal(syscall.SIGTERM) })
	o.assertNoDuplicates(t)
	if !a.exited() {
		t.Errorf("the worker did not stop on SIGTERM")
	}
	if o.AmbiguousArrived != 0 {
		t.Errorf("%d messages arrived but are recorded ambiguous: a settlement was dropped", o.AmbiguousArrived)
	}
}

// A worker frozen with SIGSTOP past asynq's lease, while another worker
// runs its tasks again, then continued: it finishes the messages it was
// handing over, on a context that outlives its cancelled task; the other
// worker never sends them again.
func TestFaultWorkerFrozen(t *testing.T) {
	// The relay waits for the frozen worker rather than close its
	// connections after 30 s.
	w, _ := faultWorld(t, durableRedis, smtptest.WithReadTimeout(10*time.Minute))
	w.seed(faultContacts, channels.Email)
	a := w.startWorker("worker-a")
	w.startWorker("worker-b")
	w.start()
	w.waitArrived(faultContacts / 3)
	a.signal(syscall.SIGSTOP)
	faultAt := time.Now()
	// Past the lease: the other worker has run every task again, and all
	// that is left is what the frozen one holds.
	waitFor(t, "only the frozen worker's sends are left", runDeadline, func() bool {
		r := w.runState()
		return r != nil && r.Counters["queued"] == 0 && r.Counters["deferred"] == 0 && r.Counters["planned"] == faultContacts
	})
	t.Logf("the other worker took over after %v", time.Since(faultAt).Round(100*time.Millisecond))
	a.signal(syscall.SIGCONT)
	o := w.finish(faultAt)
	o.assertNoDuplicates(t)
	// asynq gives a frozen worker's tasks to another 60-150 s after the
	// freeze (a 30 s lease, then a recoverer that runs every minute), so
	// the frozen worker may come back after its claims' 2-minute lease:
	// the reconciler has then settled them ambiguous, and what it hands
	// over on waking still goes, once. Only the messages it was handing
	// over may be unknown: a chunk of 8 per SMTP connection.
	o.assertUnsentPerConnection(t, "a freeze")
}

// Redis killed with SIGKILL mid-run and restarted from its append-only
// file (appendfsync always): no claim is forgotten, no message sent twice.
func TestFaultRedisKilled(t *testing.T) {
	w, r := faultWorld(t, durableRedis)
	w.seed(faultContacts, channels.Email)
	worker := w.startWorker("worker")
	o := w.breakAt(faultContacts/3, r.crash)
	o.assertNoDuplicates(t)
	if warn := logLines(worker, "a crash of Redis"); len(warn) > 0 {
		t.Errorf("worker warned on a durable Redis: %s", warn[0])
	}
}

// The same with appendfsync everysec, which loses up to a second of
// writes: messages may go twice. The count is logged, not asserted; the
// worker must have warned at start.
func TestFaultRedisKilledEverysec(t *testing.T) {
	w, r := faultWorld(t, []string{"--appendonly", "yes", "--appendfsync", "everysec"})
	w.seed(faultContacts, channels.Email)
	worker := w.startWorker("worker")
	o := w.breakAt(faultContacts/3, r.crash)
	t.Logf("appendfsync everysec: %d messages sent twice after a crash of Redis", o.Duplicates)
	if len(logLines(worker, "appendfsync always")) == 0 {
		t.Errorf("the worker did not warn that appendfsync everysec can send messages again")
	}
}

// A Sentinel failover mid-run, from a master whose replica lags: the
// replication stream is cut (the replica stays connected, through a
// proxy, but receives nothing), the master keeps taking writes, then dies,
// and the lagging replica is promoted. A claim counts only once a replica
// holds it (WAIT), so what the promoted replica lacks never left.
func TestFaultSentinelFailover(t *testing.T) {
	requireFaults(t)
	t.Parallel()
	master := startRedis(t, "redis-master")
	link := newCutProxy(t, master.addr())
	replica := startRedis(t, "redis-replica", "--replicaof", "127.0.0.1", fmt.Sprint(link.port))
	waitFor(t, "the replica is in sync", 30*time.Second, func() bool {
		info, err := replica.client().Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	sentinel := startSentinel(t, master)
	w := newWorld(t, "redis-sentinel://"+sentinel+"?master_name=mymaster")
	w.seed(faultContacts, channels.Email)
	worker := w.startWorker("worker")
	waitFor(t, "the worker inspected its Redis", 30*time.Second, func() bool {
		return len(logLines(worker, "wait for a Redis replica")) > 0
	})
	w.start()
	w.waitArrived(faultContacts / 3)

	mc := master.client()
	evals := func() int {
		info, _ := mc.Info(context.Background(), "commandstats").Result()
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(l, "cmdstat_evalsha:calls="); ok {
				n, _, _ := strings.Cut(v, ",")
				var c int
				fmt.Sscan(n, &c)
				return c
			}
		}
		return 0
	}
	link.cut()
	before := evals()
	// The master takes claims its replica never sees.
	waitFor(t, "the master ran 100 scripts its replica missed", time.Minute, func() bool { return evals() >= before+100 })
	master.kill()
	link.close()
	faultAt := time.Now()
	waitFor(t, "the replica was promoted", time.Minute, func() bool {
		info, err := replica.client().Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	t.Logf("failover after %v", time.Since(faultAt).Round(100*time.Millisecond))
	// The old master comes back empty and Sentinel makes it a replica of
	// the new one: claims can be acknowledged again.
	master.start()
	o := w.finish(faultAt)
	o.assertNoDuplicates(t)
}

// cutProxy forwards TCP connections to a Redis, and can stop passing what
// the Redis sends while keeping the connections open: a replica behind it
// falls behind without knowing.
type cutProxy struct {
	port  int
	ln    net.Listener
	mu    sync.Mutex
	off   bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &cutProxy{port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := u.Read(buf)
					p.mu.Lock()
					off := p.off
					p.mu.Unlock()
					if n > 0 && !off {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	return p
}

// cut drops from now on what the Redis sends.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = true
}

// close closes the proxy and its connections.
func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// startSentinel runs one Sentinel watching master (quorum 1, down after
// 3 s: less makes a loaded machine fail over again, to a master still
// empty) and returns its address.
func startSentinel(t *testing.T, master *redisServer) string {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	conf := dir + "/sentinel.conf"
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds mymaster 3000\nsentinel failover-timeout mymaster 10000\nsentinel parallel-syncs mymaster 1\n",
		port, dir, master.port)
	must(t, writeFile(conf, body))
	p := startProc(t, "sentinel", "redis-server", []string{conf, "--sentinel"}, nil)
	s := &redisServer{proc: p, port: port, dir: dir}
	s.waitReady()
	addr := s.addr()
	waitFor(t, "Sentinel sees the replica", 30*time.Second, func() bool {
		res, err := s.client().Do(context.Background(), "SENTINEL", "REPLICAS", "mymaster").Slice()
		return err == nil && len(res) > 0
	})
	return addr
}

// Poison tasks on Missive's queues: a payload that is not JSON, a run that
// does not exist, and every send of the run listed again in one task under
// another id. The workers survive them, and the copy sends nothing twice.
func TestFaultPoisonTasks(t *testing.T) {
	w, _ := faultWorld(t, durableRedis)
	w.seed(faultContacts, channels.Email)
	a := w.startWorker("worker-a")
	b := w.startWorker("worker-b")
	o := w.breakAt(100, func() {
		client := asynq.NewClientFromRedisClient(w.d.Store.Redis)
		queue := asynq.Queue(w.d.Pipeline.Queue("send"))
		hashes := make([]string, len(w.contacts))
		for i, c := range w.contacts {
			_, hashes[i], _ = dispatcher.SplitSendID(dispatcher.SendID(w.run, c, channels.Email))
		}
		all, _ := json.Marshal(map[string]any{"run": w.run, "sends": hashes})
		for _, payload := range [][]byte{[]byte("{not json"), []byte(`{"run":"nope-1","sends":["00"]}`), all, []byte("null")} {
			if _, err := client.Enqueue(asynq.NewTask(pipeline.TypeSend, payload), queue, asynq.MaxRetry(2)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := client.Enqueue(asynq.NewTask(pipeline.TypePlan, []byte("\x00\x01")), asynq.Queue(w.d.Pipeline.Queue("plan")), asynq.MaxRetry(1)); err != nil {
			t.Fatal(err)
		}
	})
	o.assertNoDuplicates(t)
	if a.exited() || b.exited() {
		t.Errorf("a worker died of a poison task")
	}
}

// The relay misbehaves during the run: 421 at connect for a while, 451 at
// random, 550 for some recipients, and no answer after the data for
// others. Nothing goes twice: a 451 goes again later, a 550 fails for
// good, a silent relay leaves the message ambiguous.
func TestFaultSMTP(t *testing.T) {
	w, _ := faultWorld(t, durableRedis)
	w.seed(faultContacts, channels.Email)
	for i := 0; i < 20; i++ {
		w.smtp.Reject(fmt.Sprintf("c%05d@example.test", 100+i*97), 550, "5.1.1", "mailbox unknown")
	}
	for i := 0; i < 3; i++ {
		w.smtp.HangAfterData(fmt.Sprintf("c%05d@example.test", 2000+i*101))
	}
	w.startWorker("worker")
	w.start()
	w.waitArrived(faultContacts / 5)
	// The relay goes down: 421 to every new connection, open ones closed.
	w.smtp.Unavailable(true)
	w.smtp.CloseConnections()
	faultAt := time.Now()
	waitFor(t, "the relay refused 5 connections", time.Minute, func() bool { return w.smtp.Refused() >= 5 })
	outage := time.Since(faultAt)
	arrivedDuring := w.arrived()
	w.smtp.Unavailable(false)
	w.smtp.FailRandomly(0.05)
	w.waitArrived(arrivedDuring + faultContacts/5)
	w.smtp.FailRandomly(0)
	o := w.finish(faultAt)
	o.assertNoDuplicates(t)
	t.Logf("outage of %v: %d connection attempts refused", outage.Round(100*time.Millisecond), w.smtp.Refused())
	if o.Counters["failed"] < 20 {
		t.Errorf("%d sends failed, want the 20 refused with 550 at least", o.Counters["failed"])
	}
	// The relay closing its connections may take a message and never
	// answer it: one per connection at most, ambiguous, never sent again.
	if o.AmbiguousArrived > smtpConns {
		t.Errorf("%d ambiguous messages arrived, want at most %d (one per SMTP connection)", o.AmbiguousArrived, smtpConns)
	}
}

// Twilio answers a burst of 429s, some 500s, and 21610 (the recipient
// replied STOP) for some numbers: nothing goes twice, the opted-out
// numbers fail for good, the rest go.
func TestFaultTwilio(t *testing.T) {
	const n = 600 // 20 s at the shipped 30 SMS/s
	w, _ := faultWorld(t, durableRedis)
	w.seed(n, channels.SMS)
	for i := 0; i < 10; i++ {
		w.twilio.Fail(fmt.Sprintf("+336%08d", 10000000+50+i*50), 400, 21610)
	}
	w.startWorker("worker")
	o := w.breakAt(n/6, func() {
		for range 60 {
			w.twilio.FailOnce("", 429, 20429)
		}
		for range 20 {
			w.twilio.FailOnce("", 500, 20500)
		}
	})
	o.assertNoDuplicates(t)
	if got := o.Counters["failed"] + o.Counters["bounced"]; got < 10 {
		t.Errorf("%d SMS failed or bounced, want the 10 opted-out numbers at least: %v", got, o.Counters)
	}
}
