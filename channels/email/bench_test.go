package email_test

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/email/smtptest"
)

// benchBody is a 2 KB plain text body.
var benchBody = strings.Repeat("Missive benchmark body line, 64 bytes of plain text here....\r\n", 32)

// BenchmarkSend sends 2 KB messages from N goroutines over a pool of
// connections into a local smtptest server, and reports msgs/s.
//
//	go test -run '^$' -bench BenchmarkSend -benchtime 3s ./channels/email/
func BenchmarkSend(b *testing.B) {
	m := channels.Message{Channel: channels.Email, To: "bench@example.org", Subject: "benchmark", Text: benchBody}
	for _, tc := range []struct{ goroutines, conns int }{{1, 1}, {16, 4}, {64, 8}} {
		b.Run(fmt.Sprintf("goroutines=%d/conns=%d", tc.goroutines, tc.conns), func(b *testing.B) {
			benchSends(b, email.Config{Connections: tc.conns}, tc.goroutines, m)
		})
	}
}

// BenchmarkSendBatch compares Send, one message at a time, with SendBatch
// in chunks of 16: 2 KB messages from one goroutine over one connection
// into a local smtptest server, which offers PIPELINING or not. It
// reports msgs/s and the round trips a message costs.
//
//	go test -run '^$' -bench BenchmarkSendBatch -benchmem -benchtime 3s ./channels/email/
func BenchmarkSendBatch(b *testing.B) {
	m := channels.Message{Channel: channels.Email, To: "bench@example.org", Subject: "benchmark", Text: benchBody}
	for _, relay := range batchModes {
		for _, size := range []int{1, 16} {
			name := "send"
			if size > 1 {
				name = fmt.Sprintf("batch=%d", size)
			}
			b.Run("relay="+strings.ReplaceAll(relay.name, " ", "-")+"/"+name, func(b *testing.B) {
				benchBatches(b, relay.opts, size, m)
			})
		}
	}
}

// benchBatches sends b.N copies of m, each with its own id, with Send
// when size is 1, else with SendBatch in batches of size.
func benchBatches(b *testing.B, opts []smtptest.Option, size int, m channels.Message) {
	bundle := setup(b, email.Config{Connections: 1, Timeout: 10 * time.Second}, opts...)
	ctx := context.Background()
	if _, err := bundle.sender.Send(ctx, message("warm-up")); err != nil {
		b.Fatal(err)
	}
	before := email.RoundTrips(bundle.sender)
	b.SetBytes(int64(len(m.Text)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	msgs := make([]channels.Message, size)
	for i := 0; i < b.N; i += size {
		msgs = msgs[:min(size, b.N-i)]
		for k := range msgs {
			msgs[k] = m
			msgs[k].ID = "bench-" + strconv.Itoa(i+k)
		}
		if size == 1 {
			if _, err := bundle.sender.Send(ctx, msgs[0]); err != nil {
				b.Fatal(err)
			}
			continue
		}
		for _, o := range bundle.sender.SendBatch(ctx, channels.Batch{Messages: msgs}) {
			if o.Err != nil {
				b.Fatal(o.Err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(email.RoundTrips(bundle.sender)-before)/float64(b.N), "trips/msg")
}

// BenchmarkSendDKIM measures what signing adds to BenchmarkSend: one
// signature per message, RSA 2048 against Ed25519, with the unsigned send
// as the baseline.
//
//	go test -run '^$' -bench 'BenchmarkSendDKIM|BenchmarkDKIMSignature' -benchtime 3s ./channels/email/
func BenchmarkSendDKIM(b *testing.B) {
	m := message("")
	m.Text, m.HTML = benchBody, ""
	keys := []struct {
		name string
		dkim *email.DKIM
	}{
		{"none", nil},
		{"rsa-2048", dkimConfig(rsaKey())},
		{"ed25519", dkimConfig(edKey())},
	}
	for _, k := range keys {
		for _, tc := range []struct{ goroutines, conns int }{{1, 1}, {16, 4}} {
			b.Run(fmt.Sprintf("key=%s/goroutines=%d/conns=%d", k.name, tc.goroutines, tc.conns), func(b *testing.B) {
				benchSends(b, email.Config{Connections: tc.conns, DKIM: k.dkim}, tc.goroutines, m)
			})
		}
	}
}

// benchSends sends b.N copies of m, each with its own id, from goroutines
// goroutines through one Sender made with cfg, and reports msgs/s.
func benchSends(b *testing.B, cfg email.Config, goroutines int, m channels.Message) {
	cfg.Timeout = 10 * time.Second
	bundle := setup(b, cfg)
	b.SetBytes(int64(len(m.Text)))
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				m := m
				m.ID = fmt.Sprintf("bench-%d", i)
				if _, err := bundle.sender.Send(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkDKIMSignature is the signing alone, on one goroutine: header
// parsing, body hash and one signature.
func BenchmarkDKIMSignature(b *testing.B) {
	msg, err := email.Build(message("bench"), email.Defaults{From: sender})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	for _, k := range []struct {
		name string
		key  crypto.Signer
	}{{"rsa-2048", rsaKey()}, {"ed25519", edKey()}} {
		b.Run("key="+k.name, func(b *testing.B) {
			d := dkimConfig(k.key)
			b.SetBytes(int64(buf.Len()))
			for b.Loop() {
				if _, err := d.Signature(buf.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuild builds and writes out the MIME of a campaign message as
// the send path does for each one: a personalised 2.4 KB HTML part and its
// text part, the unsubscribe headers and a VERP envelope sender.
//
//	go test -run '^$' -bench BenchmarkBuild -benchmem ./channels/email/
func BenchmarkBuild(b *testing.B) {
	html := "<!doctype html><html><body><h1>Autumn news</h1>" + strings.Repeat("<p>Bonjour Anaïs, here is what changed this month at the shop, with a link: <a href=\"https://shop.example/autumn\">autumn</a>.</p>\n", 16) + "</body></html>"
	m := channels.Message{Channel: channels.Email, ID: "autumn-r1~c-01042-email", To: "ana@example.org", Subject: "Autumn news, Anaïs",
		Text: strings.Repeat("Bonjour Anaïs, here is what changed this month at the shop.\n", 16), HTML: html,
		ReturnPath: "bounces+autumn-r1~c-01042-email.3f2a9c@bounce.example.com",
		Headers: map[string]string{"List-Unsubscribe": "<https://missive.example/u/Zm9vYmFyYmF6>, <mailto:unsubscribe@example.com?subject=unsubscribe>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}}
	d := email.Defaults{From: "Missive <news@example.com>"}
	b.ReportAllocs()
	for b.Loop() {
		msg, err := email.Build(m, d)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := msg.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
