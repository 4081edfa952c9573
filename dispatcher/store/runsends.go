package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// RunSendsFilter selects a run's sends by state and reason; "" matches
// any.
type RunSendsFilter struct {
	State  string
	Reason string
}

func (f RunSendsFilter) match(sd *dispatcher.Send) bool {
	return (f.State == "" || sd.State == f.State) && (f.Reason == "" || sd.Reason == f.Reason)
}

// RunSendsPage is one page of a run's sends.
type RunSendsPage struct {
	Sends []*dispatcher.Send
	// Next is the id of the last send the page looked at: the next page
	// starts after it. "" when the run has no sends after this page.
	Next string
}

// runSendsRead is how many index entries one round trip reads.
const runSendsRead = 200

// RunSends returns up to limit of the run's sends that f matches, in the
// order of their ids, after the send id after ("" for the first page).
// It walks the run's index (P:run:{r}:sends), never the keyspace: each
// index entry costs one HMGET of its record, pipelined, and a page looks
// at no more than budget entries, so a filter that matches little
// returns short pages (even empty ones) with a Next to go on from. Sends
// whose record expired or was erased are left out. The records hold no
// address, and the page carries no data field.
func (s *Store) RunSends(ctx context.Context, run, after string, limit, budget int, f RunSendsFilter) (*RunSendsPage, error) {
	key := s.runSendsKey(run)
	from := "-"
	if after != "" {
		from = "(" + after
	}
	page := &RunSendsPage{}
	for looked := 0; looked < budget && len(page.Sends) < limit; {
		n := min(runSendsRead, budget-looked)
		ids, err := s.Redis.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: from, Max: "+", Count: int64(n)}).Result()
		if err != nil {
			return nil, fmt.Errorf("run sends: %w", err)
		}
		cmds := make([]*redis.SliceCmd, len(ids))
		_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HMGet(ctx, s.SendKey(id), "contact", "channel", "state", "reason", "at", "until")
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("run sends: %w", err)
		}
		for i, id := range ids {
			looked++
			page.Next = id
			if sd := runSendFrom(id, run, cmds[i].Val()); sd != nil && f.match(sd) {
				if page.Sends = append(page.Sends, sd); len(page.Sends) == limit {
					break
				}
			}
		}
		if len(ids) < n && (len(ids) == 0 || page.Next == lastOf(ids)) {
			page.Next = "" // the index ended within this read
			return page, nil
		}
		from = "(" + page.Next
	}
	// A page that stops at the index's last entry has no next one.
	more, err := s.Redis.ZLexCount(ctx, key, "("+page.Next, "+").Result()
	if err != nil {
		return nil, fmt.Errorf("run sends: %w", err)
	}
	if more == 0 {
		page.Next = ""
	}
	return page, nil
}

func lastOf(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[len(ids)-1]
}

func runSendFrom(id, run string, vals []any) *dispatcher.Send {
	str := func(i int) string { v, _ := vals[i].(string); return v }
	if len(vals) < 6 || str(2) == "" {
		return nil
	}
	sd := &dispatcher.Send{ID: id, Run: run, Contact: str(0), Channel: channels.Kind(str(1)), State: str(2), Reason: str(3)}
	if v, _ := strconv.ParseInt(str(4), 10, 64); v > 0 {
		sd.UpdatedAt = time.UnixMilli(v).UTC()
	}
	if v, _ := strconv.ParseInt(str(5), 10, 64); v > 0 {
		sd.Until = time.UnixMilli(v).UTC()
	}
	return sd
}
