package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/throttle/redistest"
)

// planSetup returns a pipeline that plans batches of size contacts out of
// contacts c-00, c-01, ..., with a run r1 of a segment of every contact.
func planSetup(t *testing.T, size, contacts int) (*Pipeline, *asynq.Inspector) {
	t.Helper()
	r := redistest.New(t)
	st := storetest.New(t, r.Client, r.Prefix, time.Now, "k1")
	addContacts(t, st, contacts)
	ctx := context.Background()
	if _, err := st.CreateRun(ctx, &dispatcher.Run{ID: "r1", State: dispatcher.RunPlanning, FireAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	snap, _ := json.Marshal(runSnapshot{Segment: dispatcher.Segment{ID: "all"}})
	if err := st.PutRunSnapshot(ctx, "r1", snap); err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(r.Client)
	t.Cleanup(func() { client.Close() })
	d := &Pipeline{cfg: Config{Prefix: r.Prefix, Tuning: Tuning{BatchSize: size, MaxRetry: 1}}, Store: st, client: client,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), snap: snapshots{m: map[string]*runState{}}}
	return d, asynq.NewInspectorFromRedisClient(r.Client)
}

func addContacts(t *testing.T, st *store.Store, ids ...any) {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		if n, ok := id.(int); ok {
			for i := range n {
				fmt.Fprintf(&b, `{"id":"c-%02d","email":"c%02d@example.com","timezone":"UTC"}`+"\n", i, i)
			}
			continue
		}
		fmt.Fprintf(&b, `{"id":%q,"email":"%s@example.com","timezone":"UTC"}`+"\n", id, id)
	}
	if res, err := st.ImportContacts(context.Background(), strings.NewReader(b.String()), "UTC", nil); err != nil || res.Failed > 0 {
		t.Fatalf("import: %v %+v", err, res)
	}
}

// The planner cuts the contact list into batches of BatchSize ids, the
// last one open when short; a batch reads its range, with the contacts
// added in it since.
func TestPlanBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		size     int
		contacts int
		added    []any // after planning
		want     []batchPayload
		wantIDs  [][]string
	}{
		{name: "no contact", size: 3, contacts: 0},
		{name: "one short batch", size: 3, contacts: 2, added: []any{"c-05"},
			want:    []batchPayload{{Run: "r1", N: 0}},
			wantIDs: [][]string{{"c-00", "c-01", "c-05"}}},
		{name: "full batches", size: 3, contacts: 6,
			want:    []batchPayload{{Run: "r1", N: 0, To: "c-02"}, {Run: "r1", N: 1, From: "c-02", To: "c-05"}},
			wantIDs: [][]string{{"c-00", "c-01", "c-02"}, {"c-03", "c-04", "c-05"}}},
		{name: "full batches and a rest, grown since", size: 3, contacts: 7, added: []any{"c-03a", "c-03b", "c-03c", "c-04a", "c-9"},
			want: []batchPayload{{Run: "r1", N: 0, To: "c-02"}, {Run: "r1", N: 1, From: "c-02", To: "c-05"}, {Run: "r1", N: 2, From: "c-05"}},
			wantIDs: [][]string{{"c-00", "c-01", "c-02"}, {"c-03", "c-03a", "c-03b", "c-03c", "c-04", "c-04a", "c-05"},
				{"c-06", "c-9"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, insp := planSetup(t, tt.size, tt.contacts)
			ctx := context.Background()
			b, _ := json.Marshal(planPayload{Run: "r1"})
			if err := d.handlePlan(ctx, asynq.NewTask(TypePlan, b), nil); err != nil {
				t.Fatal(err)
			}
			tasks, err := insp.ListPendingTasks(d.Queue("batch"))
			if err != nil && len(tt.want) > 0 {
				t.Fatal(err)
			}
			var got []batchPayload
			for _, task := range tasks {
				var bp batchPayload
				if err := json.Unmarshal(task.Payload, &bp); err != nil {
					t.Fatal(err)
				}
				got = append(got, bp)
			}
			slices.SortFunc(got, func(a, b batchPayload) int { return a.N - b.N })
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("batches (-want +got):\n%s", diff)
			}
			pc, err := d.Store.PlanCursor(ctx, "r1")
			if err != nil {
				t.Fatal(err)
			}
			if !pc.Finished || pc.Batches != len(tt.want) {
				t.Errorf("plan cursor %+v, want finished with %d batches", pc, len(tt.want))
			}
			addContacts(t, d.Store, tt.added...)
			var ids [][]string
			for _, bp := range got {
				got, err := d.batchContactIDs(ctx, bp.From, bp.To)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, got)
			}
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("batch contacts (-want +got):\n%s", diff)
			}
		})
	}
}
