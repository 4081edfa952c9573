package api

import (
	"strings"
	"testing"

	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/throttle/redistest"
)

// BenchmarkCampaignCluster: emails a second into a local SMTP server, from
// the start of the run to the last message, with the whole gate on, as
// BenchmarkDeliver, on one redis-server (one send queue, its default; and
// 16 send queues, to tell the queues' share from the cluster's) and on a
// Redis Cluster of three local masters (16 send queues, its default).
// -count repeats each case in a row; to alternate them, so that they share
// the machine's load alike, repeat the whole benchmark instead:
//
//	for i in 1 2 3 4 5; do go test ./dispatcher/api -run '^$' -bench CampaignCluster -benchtime 1x; done
//
// MISSIVE_BENCH_N sets the contacts (default 20,000).
func BenchmarkCampaignCluster(b *testing.B) {
	n := benchN(20_000)
	for _, bc := range []struct {
		name    string
		cluster bool
		queues  int
	}{
		{"redis=single/queues=1", false, 0},
		{"redis=single/queues=16", false, 16},
		{"redis=cluster3/queues=16", true, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				opts := []option{withConfig(func(c *app.Config) { c.SendQueues = bc.queues })}
				if bc.cluster {
					opts = append(opts, withCluster(redistest.NewCluster(b)))
				}
				tb, _ := deliverBench(b, n, opts...)
				queues := 0
				for q := range tb.d.Pipeline.Queues() {
					if strings.HasPrefix(q, tb.d.Pipeline.Queue("send")) {
						queues++
					}
				}
				b.ReportMetric(float64(queues), "send-queues")
			}
		})
	}
}
