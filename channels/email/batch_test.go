package email_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/wneessen/go-mail"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/email/smtptest"
)

// batchModes are the relays a batch is tried against: one that offers
// PIPELINING (go-smtp's default) and one that does not.
var batchModes = []struct {
	name       string
	pipelining bool
	opts       []smtptest.Option
}{
	{"pipelining", true, nil},
	{"no pipelining", false, []smtptest.Option{smtptest.WithoutPipelining()}},
}

// batchMessages returns n messages with ids prefix-0, prefix-1..., each to
// its own recipient prefix-i@example.org.
func batchMessages(prefix string, n int) []channels.Message {
	msgs := make([]channels.Message, n)
	for i := range msgs {
		m := message(fmt.Sprintf("%s-%d", prefix, i))
		m.To = channels.Address(fmt.Sprintf("%s-%d@example.org", prefix, i))
		msgs[i] = m
	}
	return msgs
}

// summary is an outcome in a few words: "sent", the kind and code of a
// *channels.Error ("temporary 4.7.1"), or "error: " and another error's
// text.
func summary(o channels.Outcome) string {
	if o.Err == nil {
		return "sent"
	}
	var ce *channels.Error
	if !errors.As(o.Err, &ce) {
		return "error: " + o.Err.Error()
	}
	return strings.TrimSpace(ce.Kind.String() + " " + ce.Code)
}

// checkOutcomes compares the outcomes of msgs with want (see summary),
// and checks that a sent message's ProviderID is its Message-ID, that a
// failed one has none, and that no error shows an address or the body.
func checkOutcomes(t *testing.T, msgs []channels.Message, got []channels.Outcome, want ...string) {
	t.Helper()
	if len(got) != len(msgs) {
		t.Fatalf("%d outcomes for %d messages", len(got), len(msgs))
	}
	sums := make([]string, len(got))
	for i, o := range got {
		sums[i] = summary(o)
		switch {
		case o.Err == nil && o.Result.ProviderID != "<"+msgs[i].ID+"@missive.example>":
			t.Errorf("message %d: ProviderID %q, want its Message-ID", i, o.Result.ProviderID)
		case o.Err != nil && o.Result.ProviderID != "":
			t.Errorf("message %d failed with ProviderID %q", i, o.Result.ProviderID)
		case o.Err != nil:
			assertClean(t, o.Err, string(msgs[i].To), msgs[i])
		}
	}
	if diff := cmp.Diff(want, sums); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

// checkReceived compares the Message-Ids the server accepted, in order,
// with those of msgs[idx...].
func checkReceived(t *testing.T, srv *smtptest.Server, msgs []channels.Message, idx ...int) {
	t.Helper()
	if len(idx) > 0 {
		srv.Wait(len(idx), 5*time.Second)
	}
	want := make([]string, len(idx))
	for k, i := range idx {
		want[k] = "<" + msgs[i].ID + "@missive.example>"
	}
	var got []string
	for _, r := range srv.Messages() {
		got = append(got, messageID(r.Data))
	}
	if diff := cmp.Diff(want, got, cmpEmptyNil); diff != "" {
		t.Errorf("messages received (-want +got):\n%s", diff)
	}
}

// checkConnections fails t unless the server accepted want connections.
func checkConnections(t *testing.T, srv *smtptest.Server, want int) {
	t.Helper()
	if c := srv.Connections(); c != want {
		t.Errorf("%d connections, want %d", c, want)
	}
}

var cmpEmptyNil = cmp.Transformer("emptyNil", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

// warmUp sends one message so that the connection is open and its dial
// is not counted, and returns the round trips so far.
func warmUp(t *testing.T, b *testBundle) int64 {
	t.Helper()
	if _, err := b.sender.Send(context.Background(), message("warm-up")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	return email.RoundTrips(b.sender)
}

// eachMode runs test in a parallel subtest per relay of batchModes, named
// after it, on a sender with one connection to it.
func eachMode(t *testing.T, test func(t *testing.T, b *testBundle, pipelining bool)) {
	for _, mode := range batchModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			test(t, setup(t, email.Config{Connections: 1}, mode.opts...), mode.pipelining)
		})
	}
}

// The messages of a batch arrive complete, in order, each with its
// envelope, over one connection. With PIPELINING a message costs one
// round trip (its data and the next envelope leave together, and the
// first envelope takes one more); without, four (MAIL FROM, RCPT TO, DATA,
// the data) and never an RSET or a NOOP.
func TestSendBatch(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, b *testBundle, pipelining bool) {
		before := warmUp(t, b)
		const n = 50
		msgs := batchMessages("batch", n)
		for i := range msgs {
			if i%2 == 0 {
				msgs[i].ReturnPath = fmt.Sprintf("bounces+%d@bounce.missive.example", i)
			}
		}
		got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
		trips := email.RoundTrips(b.sender) - before

		want := make([]string, n)
		for i := range want {
			want[i] = "sent"
		}
		checkOutcomes(t, msgs, got, want...)
		received := b.srv.Wait(n+1, 5*time.Second)[1:]
		if len(received) != n {
			t.Fatalf("%d messages received, want %d", len(received), n)
		}
		for i, r := range received {
			wantFrom := "news@missive.example"
			if msgs[i].ReturnPath != "" {
				wantFrom = msgs[i].ReturnPath
			}
			if id := messageID(r.Data); id != got[i].Result.ProviderID || r.From != wantFrom || !cmp.Equal(r.To, []string{string(msgs[i].To)}) {
				t.Errorf("message %d arrived as %s from %q to %q, want %s from %q to %q", i, id, r.From, r.To, got[i].Result.ProviderID, wantFrom, msgs[i].To)
			}
			if !strings.Contains(string(r.Data), "our spring news.") {
				t.Errorf("message %d arrived without its body", i)
			}
		}
		wantTrips := int64(4 * n)
		if pipelining {
			wantTrips = n + 1
		}
		if trips != wantTrips {
			t.Errorf("%d round trips for %d messages, want %d", trips, n, wantTrips)
		}
		checkConnections(t, b.srv, 1)
	})
}

// Claim is called once, with the indexes of the messages that could be
// built; the messages it refuses are not sent and keep its error.
func TestSendBatchClaim(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{})
	msgs := batchMessages("claim", 6)
	msgs[1].To = "not an address"
	msgs[4].Headers["Bcc"] = rcpt
	errHeld := errors.New("held: the run is paused")
	var calls [][]int
	batch := channels.Batch{Messages: msgs, Claim: func(ctx context.Context, idx []int) []error {
		calls = append(calls, idx)
		errs := make([]error, len(idx))
		for k, i := range idx {
			if i == 3 {
				errs[k] = errHeld
			}
		}
		return errs
	}}
	// Through channels.SendBatch, as the dispatcher calls it.
	got := channels.SendBatch(context.Background(), b.sender, batch)
	if diff := cmp.Diff([][]int{{0, 2, 3, 5}}, calls); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	checkOutcomes(t, msgs, got, "sent", "permanent", "sent", "error: held: the run is paused", "permanent", "sent")
	if got[3].Err != errHeld {
		t.Errorf("refused claim: error %v, want the claim's own", got[3].Err)
	}
	checkReceived(t, b.srv, msgs, 0, 2, 5)

	// A batch with nothing to claim neither claims nor connects.
	calls = nil
	bad := batchMessages("unbuildable", 2)
	bad[0].Text, bad[0].HTML = "", ""
	bad[1].ID = ""
	got = b.sender.SendBatch(context.Background(), channels.Batch{Messages: bad, Claim: batch.Claim})
	checkOutcomes(t, bad, got, "permanent", "permanent")
	if len(calls) != 0 || b.srv.Connections() != 1 {
		t.Errorf("%d claims and %d connections for a batch of unbuildable messages, want none and the first connection", len(calls), b.srv.Connections())
	}

	if err := b.sender.Close(); err != nil {
		t.Fatal(err)
	}
	for i, o := range b.sender.SendBatch(context.Background(), channels.Batch{Messages: batchMessages("closed", 2)}) {
		if !errors.Is(o.Err, email.ErrClosed) {
			t.Errorf("message %d after Close: %v, want ErrClosed", i, o.Err)
		}
	}
}

// A refused recipient fails its message only: the others go, over the
// same connection, with an RSET before the next transaction, which
// pipelining carries with the next envelope.
func TestSendBatchRecipientRefused(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, b *testBundle, pipelining bool) {
		before := warmUp(t, b)
		msgs := batchMessages("refused", 7)
		b.srv.Reject(string(msgs[2].To), 550, "5.1.1", "<"+string(msgs[2].To)+">: User unknown")
		b.srv.Reject(string(msgs[4].To), 451, "4.7.1", "<"+string(msgs[4].To)+">: greylisted")
		b.srv.Reject(string(msgs[5].To), 550, "5.1.1", "<"+string(msgs[5].To)+">: User unknown")
		got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
		checkOutcomes(t, msgs, got, "sent", "sent", "permanent 5.1.1", "sent", "temporary 4.7.1", "permanent 5.1.1", "sent")
		var ce *channels.Error
		if errors.As(got[2].Err, &ce) && ce.Feedback != channels.HardBounce {
			t.Errorf("Feedback %q, want a hard bounce", ce.Feedback)
		}
		// The warm-up message first.
		checkReceived(t, b.srv, append([]channels.Message{message("warm-up")}, msgs...), 0, 1, 2, 4, 7)
		if pipelining {
			// A refused message has no data to carry the next
			// envelope; the RSET and that envelope take its place.
			if trips := email.RoundTrips(b.sender) - before; trips != int64(len(msgs)+1) {
				t.Errorf("%d round trips for %d messages, want %d", trips, len(msgs), len(msgs)+1)
			}
		}
		checkConnections(t, b.srv, 1)
	})
}

// When the relay refuses an envelope sender, the messages after it are
// not sent and get the same error; the connection stays usable.
func TestSendBatchSenderRefused(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, b *testBundle, pipelining bool) {
		msgs := batchMessages("sender", 5)
		msgs[2].ReturnPath = "blocked@bounce.missive.example"
		b.srv.RejectFrom(msgs[2].ReturnPath, 550, "5.7.1", "sender not allowed")
		got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
		checkOutcomes(t, msgs, got, "sent", "sent", "sender 5.7.1", "sender 5.7.1", "sender 5.7.1")
		checkReceived(t, b.srv, msgs, 0, 1)

		again := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs[3:]})
		checkOutcomes(t, msgs[3:], again, "sent", "sent")
		checkReceived(t, b.srv, msgs, 0, 1, 3, 4)
		checkConnections(t, b.srv, 1)
	})
}

// A connection lost after the end of a message's data: that message is
// Ambiguous, and the ones after it, which never left, go over a new
// connection and arrive once.
func TestSendBatchConnectionLost(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, b *testBundle, pipelining bool) {
		msgs := batchMessages("lost", 8)
		b.srv.DropAfterData(string(msgs[3].To))
		got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
		checkOutcomes(t, msgs, got, "sent", "sent", "sent", "ambiguous", "sent", "sent", "sent", "sent")
		checkReceived(t, b.srv, msgs, 0, 1, 2, 4, 5, 6, 7)
		checkConnections(t, b.srv, 2)
	})
}

// A relay that answers 421 mid-batch and closes: the message it refused
// is Temporary with the relay's code, and the ones after it, of which
// nothing left, go over a new connection, where the relay closes again
// after three.
func TestSendBatchRelayCloses(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, b *testBundle, pipelining bool) {
		msgs := batchMessages("closes", 8)
		b.srv.CloseAfter(3)
		got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
		checkOutcomes(t, msgs, got, "sent", "sent", "sent", "temporary 4.3.2", "sent", "sent", "sent", "temporary 4.3.2")
		checkReceived(t, b.srv, msgs, 0, 1, 2, 4, 5, 6)

		b.srv.CloseAfter(0)
		again := b.sender.SendBatch(context.Background(), channels.Batch{Messages: []channels.Message{msgs[3], msgs[7]}})
		checkOutcomes(t, []channels.Message{msgs[3], msgs[7]}, again, "sent", "sent")
		checkReceived(t, b.srv, msgs, 0, 1, 2, 4, 5, 6, 3, 7)
	})
}

// A pooled connection that the relay closed while it sat idle is
// redialled once: nothing of the batch had gone.
func TestSendBatchRedialsIdleConnection(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, b *testBundle, pipelining bool) {
		warmUp(t, b)
		b.srv.CloseConnections()
		msgs := batchMessages("redial", 5)
		got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
		checkOutcomes(t, msgs, got, "sent", "sent", "sent", "sent", "sent")
		checkReceived(t, b.srv, append([]channels.Message{message("warm-up")}, msgs...), 0, 1, 2, 3, 4, 5)
		checkConnections(t, b.srv, 2)
	})
}

// The same when the relay answers the first MAIL FROM with 421 (it closes
// idle sessions that way): the batch goes over a new connection, where
// the limit applies again.
func TestSendBatchRedialsAfter421(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{Connections: 1})
	warmUp(t, b)
	b.srv.CloseAfter(1)
	msgs := batchMessages("redial-421", 3)
	got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
	checkOutcomes(t, msgs, got, "sent", "temporary 4.3.2", "sent")
	checkReceived(t, b.srv, append([]channels.Message{message("warm-up")}, msgs...), 0, 1, 3)
	checkConnections(t, b.srv, 3)
}

// The envelope is the one go-mail's own Client sends for the message:
// the same MAIL FROM and RCPT TO, BODY=8BITMIME, and SMTPUTF8 when the
// relay offers it.
func TestEnvelopeAsGoMail(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]smtptest.Option{"plain": nil, "smtputf8": {smtptest.WithSMTPUTF8()}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, email.Config{ReturnPath: bounceTo}, opts...)
			m := message("envelope")
			msg, err := email.Build(m, email.Defaults{From: sender, ReturnPath: bounceTo})
			if err != nil {
				t.Fatal(err)
			}
			host, port, _ := strings.Cut(b.srv.Addr(), ":")
			p, _ := strconv.Atoi(port)
			client, err := mail.NewClient(host, mail.WithPort(p), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := client.DialAndSend(msg); err != nil {
				t.Fatalf("go-mail: %v", err)
			}
			if _, err := b.sender.Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := b.srv.Wait(2, 5*time.Second)
			ours, theirs := got[1], got[0]
			ours.Data, theirs.Data, ours.At, theirs.At, ours.Size, theirs.Size = nil, nil, time.Time{}, time.Time{}, 0, 0
			if diff := cmp.Diff(theirs, ours); diff != "" {
				t.Errorf("envelope (-go-mail +ours):\n%s", diff)
			}
			if ours.BodyType != "8BITMIME" || ours.UTF8 != (name == "smtputf8") {
				t.Errorf("BODY=%q SMTPUTF8 %v", ours.BodyType, ours.UTF8)
			}
		})
	}
}

func TestSendBatchCancelled(t *testing.T) {
	t.Parallel()
	// Nothing is claimed or sent with a context done before the batch.
	t.Run("before", func(t *testing.T) {
		t.Parallel()
		b := setup(t, email.Config{})
		warmUp(t, b)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		msgs := batchMessages("before", 3)
		claimed := false
		got := b.sender.SendBatch(ctx, channels.Batch{Messages: msgs, Claim: func(context.Context, []int) []error {
			claimed = true
			return make([]error, 3)
		}})
		checkOutcomes(t, msgs, got, "temporary", "temporary", "temporary")
		for i, o := range got {
			if !errors.Is(o.Err, context.Canceled) {
				t.Errorf("message %d: %v does not wrap context.Canceled", i, o.Err)
			}
		}
		if claimed {
			t.Error("claimed with a cancelled context")
		}
		checkReceived(t, b.srv, []channels.Message{message("warm-up")}, 0)
	})
	// A context that ends once the messages are claimed stops the batch
	// before any data: all are Temporary.
	t.Run("after the claim", func(t *testing.T) {
		t.Parallel()
		b := setup(t, email.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		msgs := batchMessages("claimed", 3)
		got := b.sender.SendBatch(ctx, channels.Batch{Messages: msgs, Claim: func(context.Context, []int) []error {
			cancel()
			return make([]error, 3)
		}})
		checkOutcomes(t, msgs, got, "temporary", "temporary", "temporary")
		if !errors.Is(got[0].Err, context.Canceled) {
			t.Errorf("%v does not wrap context.Canceled", got[0].Err)
		}
		checkReceived(t, b.srv, nil)
	})
	for _, mode := range batchModes {
		// Cancelled while waiting for the reply to a message's data: the
		// relay may have it (Ambiguous); the next ones never left.
		t.Run("after the data/"+mode.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, email.Config{Connections: 1}, mode.opts...)
			msgs := batchMessages("hung", 5)
			b.srv.HangAfterData(string(msgs[2].To))
			got := cancelWhenStuck(t, b, msgs)
			checkOutcomes(t, msgs, got, "sent", "sent", "ambiguous", "temporary", "temporary")
			for _, i := range []int{2, 3} {
				if !errors.Is(got[i].Err, context.Canceled) {
					t.Errorf("message %d: %v does not wrap context.Canceled", i, got[i].Err)
				}
			}
			checkReceived(t, b.srv, msgs, 0, 1)
		})
		// Cancelled in the middle of a message's data, which the relay
		// stopped reading: its end never left, so it is Temporary, as
		// are the next ones, and the connection is dropped.
		t.Run("in the data/"+mode.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, email.Config{Connections: 1}, mode.opts...)
			msgs := batchMessages("stalled", 4)
			msgs[1].Text, msgs[1].HTML = largeBody(), ""
			b.srv.StallData(string(msgs[1].To))
			got := cancelWhenStuck(t, b, msgs)
			checkOutcomes(t, msgs, got, "sent", "temporary", "temporary", "temporary")
			if !errors.Is(got[1].Err, context.Canceled) {
				t.Errorf("%v does not wrap context.Canceled", got[1].Err)
			}
			checkReceived(t, b.srv, msgs, 0)

			again := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs[2:]})
			checkOutcomes(t, msgs[2:], again, "sent", "sent")
			// The one cut in the data is not used again.
			checkConnections(t, b.srv, 2)
		})
	}
}

// cancelWhenStuck sends msgs in a batch and cancels its context once a
// session of the server is stuck (HangAfterData, StallData).
func cancelWhenStuck(t *testing.T, b *testBundle, msgs []channels.Message) []channels.Outcome {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan []channels.Outcome, 1)
	go func() { done <- b.sender.SendBatch(ctx, channels.Batch{Messages: msgs}) }()
	b.srv.WaitStuck(1, 10*time.Second)
	cancel()
	select {
	case got := <-done:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("SendBatch did not return after its context was cancelled")
		return nil
	}
}

// largeBody is a text body larger than the socket buffers can hold
// between a client and a server that stops reading: twice the largest
// send buffer Linux gives a TCP socket, and 8 MiB at least.
func largeBody() string {
	size := 8 << 20
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if n, err := strconv.Atoi(f[2]); err == nil {
				size = max(size, 2*n)
			}
		}
	}
	line := strings.Repeat("x", 62) + "\r\n"
	return strings.Repeat(line, size/len(line)+1)
}

// Batches go over STARTTLS and implicit TLS, pipelined.
func TestSendBatchTLS(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]smtptest.Option{"starttls": smtptest.WithStartTLS(), "implicit": smtptest.WithImplicitTLS()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, email.Config{Connections: 1}, opt, smtptest.WithAuth("missive", "s3cret-pass"))
			before := warmUp(t, b)
			msgs := batchMessages("tls-"+name, 10)
			got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
			checkOutcomes(t, msgs, got, "sent", "sent", "sent", "sent", "sent", "sent", "sent", "sent", "sent", "sent")
			if trips := email.RoundTrips(b.sender) - before; trips != int64(len(msgs)+1) {
				t.Errorf("%d round trips for %d messages, want %d", trips, len(msgs), len(msgs)+1)
			}
			for i, r := range b.srv.Wait(len(msgs)+1, 5*time.Second) {
				if !r.TLS || r.User != "missive" {
					t.Errorf("message %d: TLS %v, user %q; want TLS and missive", i, r.TLS, r.User)
				}
			}
		})
	}
}

// Signed messages of a batch verify as the relay received them, dots
// and all.
func TestSendBatchDKIM(t *testing.T) {
	t.Parallel()
	key := edKey()
	b := setup(t, email.Config{DKIM: dkimConfig(key), Connections: 1})
	msgs := batchMessages("dkim-batch", 4)
	msgs[1].HTML = ""
	msgs[2].Text = ""
	msgs[3].HTML, msgs[3].Text = "", ".\r\n..\r\n. leading dot\r\nend  \r\n\r\n"
	got := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs})
	checkOutcomes(t, msgs, got, "sent", "sent", "sent", "sent")
	for i, r := range b.srv.Wait(len(msgs), 5*time.Second) {
		if _, err := verify(t, r.Data, key); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
}
