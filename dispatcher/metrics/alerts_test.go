package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestAlertRulesNameMetricsThatExist: every missive_ metric the shipped
// alerting rules use is one this package serves, with the labels the
// rules select on.
func TestAlertRulesNameMetricsThatExist(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	served := map[string][]string{}
	for _, c := range []prometheus.Collector{m.decisions, m.sends, m.providerDuration, m.providerErrors, m.feedback,
		m.rateWaits, m.rateWaitSeconds, m.leader, m.leaseLosses, m.redisErrors, m.queues} {
		ch := make(chan *prometheus.Desc, 4)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			// Desc prints fqName: "...", ..., variableLabels: {a,b}.
			s := d.String()
			name := regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(s)[1]
			labels := regexp.MustCompile(`variableLabels: \{([a-z_,]*)\}`).FindStringSubmatch(s)
			served[name] = nil
			if labels != nil && labels[1] != "" {
				served[name] = strings.Split(labels[1], ",")
			}
		}
	}
	uses := regexp.MustCompile(`(missive_[a-z_]+)(\{[^}]*\})?`).FindAllStringSubmatch(string(b), -1)
	if len(uses) < 10 {
		t.Fatalf("only %d metric uses found in the rules", len(uses))
	}
	for _, u := range uses {
		name := u[1]
		labels, ok := served[name]
		if !ok {
			t.Errorf("the rules use %s, which Missive does not serve", name)
			continue
		}
		for _, sel := range regexp.MustCompile(`([a-z_]+)\s*!?=~?`).FindAllStringSubmatch(u[2], -1) {
			if !slices.Contains(labels, sel[1]) {
				t.Errorf("the rules select %s on label %s, which it does not have (%v)", name, sel[1], labels)
			}
		}
	}
}
