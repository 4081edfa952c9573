package store

import (
	"strings"
	"testing"

	"github.com/missive-dev/missive/throttle/redistest"
)

// What a worker says at start about the Redis it was given.
func TestDurabilityWarning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		d       Durability
		durable bool
		warns   string // a part of the warning, "" for none
	}{
		{"replicas", Durability{Replicas: 1}, true, ""},
		{"fsync always", Durability{AppendOnly: true, AppendFsync: "always"}, true, ""},
		{"fsync every second", Durability{AppendOnly: true, AppendFsync: "everysec"}, false, "appendfsync everysec"},
		{"no append-only file", Durability{}, false, "appendonly yes"},
		{"CONFIG refused", Durability{Unverified: true}, false, "cannot verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.d.ClaimsDurable(); got != tt.durable {
				t.Errorf("ClaimsDurable() = %v, want %v", got, tt.durable)
			}
			w := tt.d.Warning()
			if (tt.warns == "") != (w == "") || !strings.Contains(w, tt.warns) {
				t.Errorf("Warning() = %q, want one with %q", w, tt.warns)
			}
		})
	}
}

// CheckDurability reads the settings of a real server, and only those.
func TestCheckDurability(t *testing.T) {
	t.Parallel()
	if redistest.Kind() == "in-process" {
		t.Skip("the in-process Redis has no INFO replication or CONFIG; a redis-server runs this test")
	}
	s, ctx := setup(t)
	d, err := CheckDurability(ctx, s.Redis)
	must(t, err)
	if d.Unverified || d.AppendFsync == "" {
		t.Errorf("durability %+v: want the append-only settings read", d)
	}
}
