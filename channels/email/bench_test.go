package email_test

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
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
