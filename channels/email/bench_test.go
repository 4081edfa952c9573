package email_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
)

// BenchmarkSend sends 2 KB messages from N goroutines over a pool of
// connections into a local smtptest server, and reports msgs/s.
//
//	go test -run '^$' -bench BenchmarkSend -benchtime 3s ./channels/email/
func BenchmarkSend(b *testing.B) {
	body := strings.Repeat("Missive benchmark body line, 64 bytes of plain text here....\r\n", 32) // 2 KB
	for _, tc := range []struct{ goroutines, conns int }{{1, 1}, {16, 4}, {64, 8}} {
		b.Run(fmt.Sprintf("goroutines=%d/conns=%d", tc.goroutines, tc.conns), func(b *testing.B) {
			bundle := setup(b, email.Config{Connections: tc.conns, Timeout: 10 * time.Second})
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			start := time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range tc.goroutines {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						m := channels.Message{
							ID: fmt.Sprintf("bench-%d", i), Channel: channels.Email,
							To: "bench@example.org", Subject: "benchmark", Text: body,
						}
						if _, err := bundle.sender.Send(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
