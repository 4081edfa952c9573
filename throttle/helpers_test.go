package throttle_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseCase is one input of a parser's table: err, when set, is part of
// the error the input must give; otherwise the parser must give want.
type parseCase[T any] struct {
	in   string
	want T
	err  string
}

// testParse runs parse on each case in its own subtest and compares what
// it gives with opts. roundTrip then checks, on each value parsed, that
// parse reads back what String writes of it.
func testParse[T any](t *testing.T, name string, parse func(string) (T, error), tests []parseCase[T], roundTrip func(t *testing.T, got T), opts ...cmp.Option) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("%s(%q) error = %v, want it to contain %q", name, tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s(%q): %v", name, tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, opts...); diff != "" {
				t.Errorf("%s(%q) (-want +got):\n%s", name, tt.in, diff)
			}
			roundTrip(t, got)
		})
	}
}
