package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
)

func TestPlanCursor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(ctx context.Context, s *Store) error
		want  PlanCursor
	}{
		{"not planned", func(context.Context, *Store) error { return nil }, PlanCursor{}},
		{"saved", func(ctx context.Context, s *Store) error {
			return s.SavePlanCursor(ctx, "r1", "c-0042", 3)
		}, PlanCursor{After: "c-0042", Batches: 3}},
		{"finished", func(ctx context.Context, s *Store) error {
			if err := s.SavePlanCursor(ctx, "r1", "c-0042", 3); err != nil {
				return err
			}
			return s.FinishPlan(ctx, "r1", 4)
		}, PlanCursor{After: "c-0042", Batches: 4, Finished: true}},
		{"finished without a batch", func(ctx context.Context, s *Store) error {
			return s.FinishPlan(ctx, "r1", 0)
		}, PlanCursor{Finished: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			if err := tt.write(ctx, s); err != nil {
				t.Fatal(err)
			}
			got, err := s.PlanCursor(ctx, "r1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PlanCursor (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeeBatch(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	steps := []struct {
		run       string
		n         int
		wantFirst bool
	}{
		{"r1", 0, true},
		{"r1", 0, false},
		{"r1", 1, true},
		{"r2", 0, true},
		{"r1", 1, false},
	}
	for i, st := range steps {
		first, err := s.SeeBatch(ctx, st.run, st.n)
		if err != nil {
			t.Fatal(err)
		}
		if first != st.wantFirst {
			t.Errorf("step %d: SeeBatch(%s, %d) = %v, want %v", i, st.run, st.n, first, st.wantFirst)
		}
	}
}

func TestFinishBatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		planned  int // batches; -1: planning not finished
		inflight []string
		finish   []string // batch numbers, in order ("" checks only)
		want     []bool
		wantDone string // batches_done after the calls
	}{
		{name: "planning not finished", planned: -1, finish: []string{"0", "1"}, want: []bool{false, false}, wantDone: "2"},
		{name: "last batch ends the run", planned: 2, finish: []string{"0", "1"}, want: []bool{false, true}, wantDone: "2"},
		{name: "a batch counts once", planned: 2, finish: []string{"0", "0", "1", "1"}, want: []bool{false, false, true, true}, wantDone: "2"},
		{name: "sends in flight", planned: 1, inflight: []string{"s1"}, finish: []string{"0"}, want: []bool{false}, wantDone: "1"},
		{name: "check only", planned: 0, finish: []string{""}, want: []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			if tt.planned >= 0 {
				if err := s.FinishPlan(ctx, "r1", tt.planned); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range tt.inflight {
				if err := s.Redis.ZAdd(ctx, s.inflightKey("r1"), redis.Z{Score: 1, Member: id}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			var got []bool
			for _, n := range tt.finish {
				done, err := s.FinishBatch(ctx, "r1", n)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, done)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FinishBatch (-want +got):\n%s", diff)
			}
			if n, _ := s.RunField(ctx, "r1", "batches_done"); n != tt.wantDone {
				t.Errorf("batches_done = %q, want %q", n, tt.wantDone)
			}
			// Once the batches are done, the last send to settle ends the run.
			wantPlanned := ""
			if tt.planned >= 0 {
				wantPlanned = "1"
			}
			if v, _ := s.RunField(ctx, "r1", "planned_done"); v != wantPlanned {
				t.Errorf("planned_done = %q, want %q", v, wantPlanned)
			}
		})
	}
}

func TestDropInflight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		drop []string
		want []string
	}{
		{"some", []string{"a", "c"}, []string{"b"}},
		{"none", nil, []string{"a", "b", "c"}},
		{"unknown", []string{"z"}, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			for i, id := range []string{"a", "b", "c"} {
				if err := s.Redis.ZAdd(ctx, s.inflightKey("r1"), redis.Z{Score: float64(i), Member: id}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.DropInflight(ctx, "r1", tt.drop...); err != nil {
				t.Fatal(err)
			}
			got, err := s.InflightSends(ctx, "r1", 10)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("in flight (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		write     func(ctx context.Context, s *Store) (bool, error)
		want      string
		wantAdded bool
	}{
		{"put", func(ctx context.Context, s *Store) (bool, error) {
			return false, s.PutRunSnapshot(ctx, "r1", []byte(`{"v":1}`))
		},
			`{"v":1}`, false},
		{"put replaces", func(ctx context.Context, s *Store) (bool, error) {
			if err := s.PutRunSnapshot(ctx, "r1", []byte(`{"v":1}`)); err != nil {
				return false, err
			}
			return false, s.PutRunSnapshot(ctx, "r1", []byte(`{"v":2}`))
		}, `{"v":2}`, false},
		{"add when absent", func(ctx context.Context, s *Store) (bool, error) {
			return s.AddRunSnapshot(ctx, "r1", []byte(`{"v":1}`))
		},
			`{"v":1}`, true},
		{"add keeps the first", func(ctx context.Context, s *Store) (bool, error) {
			if err := s.PutRunSnapshot(ctx, "r1", []byte(`{"v":1}`)); err != nil {
				return false, err
			}
			return s.AddRunSnapshot(ctx, "r1", []byte(`{"v":2}`))
		}, `{"v":1}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			if _, err := s.RunSnapshot(ctx, "r1"); !errors.Is(err, dispatcher.ErrNotFound) {
				t.Fatalf("RunSnapshot before any write: %v, want ErrNotFound", err)
			}
			added, err := tt.write(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if added != tt.wantAdded {
				t.Errorf("added = %v, want %v", added, tt.wantAdded)
			}
			got, err := s.RunSnapshot(ctx, "r1")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("RunSnapshot = %s, want %s", got, tt.want)
			}
		})
	}
}
