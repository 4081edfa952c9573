package email_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
)

// During an outage of the relay (421 at connect) the pool, not each send,
// retries the connection: sends fail fast with the pool's RetryIn, the
// relay sees a handful of attempts, and every message goes once it is back.
func TestOutageBacksOffPerPool(t *testing.T) {
	t.Parallel()
	const (
		conns    = 4
		base     = 20 * time.Millisecond
		maxWait  = 160 * time.Millisecond
		messages = 300
		workers  = 32
		// The outage ends once sends have failed this often: with a dial
		// per send, that many refused connections.
		failuresInOutage = 600
	)
	b := setup(t, email.Config{Connections: conns, DialBackoff: base, MaxDialBackoff: maxWait})
	b.srv.Unavailable(true)
	start := time.Now()

	var failures atomic.Int64
	var outage sync.Once
	var outageLasted time.Duration
	endOutage := func() {
		outage.Do(func() {
			b.srv.Unavailable(false)
			// Measured after: every refused attempt was made before.
			outageLasted = time.Since(start)
		})
	}
	ids := make(chan string, messages)
	for i := range messages {
		ids <- fmt.Sprintf("outage-%d", i)
	}
	close(ids)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				for {
					_, err := b.sender.Send(ctx, message(id))
					if err == nil {
						break
					}
					var ce *channels.Error
					if !errors.As(err, &ce) || ce.Kind != channels.Temporary || ctx.Err() != nil {
						errc <- fmt.Errorf("send %s: %w", id, err)
						return
					}
					if failures.Add(1) >= failuresInOutage {
						endOutage()
					}
					// As the queue does: come back when the pool says.
					select {
					case <-time.After(ce.RetryIn):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	got := b.srv.Wait(messages, 10*time.Second)
	seen := map[string]int{}
	for _, m := range got {
		seen[messageID(m.Data)]++
	}
	if len(got) != messages || len(seen) != messages {
		t.Errorf("%d messages for %d ids, want %d once each", len(got), len(seen), messages)
	}
	// The schedule allows, within the outage, one round of dials by every
	// connection, then one probe after each wait: base, 2*base, ... capped.
	allowed, waited := conns, time.Duration(0)
	for n := 1; ; n++ {
		waited += min(base<<(n-1), maxWait)
		if waited > outageLasted {
			break
		}
		allowed++
	}
	refused := b.srv.Refused()
	t.Logf("outage of %v: %d sends failed, %d connection attempts refused (the schedule allows %d)", outageLasted, failures.Load(), refused, allowed)
	if refused > allowed {
		t.Errorf("%d connection attempts during the outage, the backoff allows %d", refused, allowed)
	}
}

// messageID is the Message-Id of a message as the relay received it.
func messageID(data []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	return m.Header.Get("Message-Id")
}
