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
	// Next is the position in the run's index the next page starts at,
	// and 0 when nothing follows this page.
	Next int64
}

// runSendsRead is how many index entries one round trip reads.
const runSendsRead = 200

// RunSends returns up to limit of the run's sends that f matches, in the
// order they were decided, from position from of the run's index
// (P:run:{r}:sends; 0 for the first page). It walks the index, never the
// keyspace: each entry costs one HMGET of its record, pipelined, and a
// page looks at no more than budget entries, so a filter that matches
// little gives short pages (even empty ones) with a Next to go on from.
// Sends whose record expired or was erased are left out; the sends carry
// no data.
func (s *Store) RunSends(ctx context.Context, run string, from int64, limit, budget int, f RunSendsFilter) (*RunSendsPage, error) {
	key := s.runSendsKey(run)
	page := &RunSendsPage{}
	pos := from
	for looked := 0; looked < budget && len(page.Sends) < limit; {
		n := min(runSendsRead, budget-looked)
		ids, err := s.Redis.LRange(ctx, key, pos, pos+int64(n)-1).Result()
		if err != nil {
			return nil, fmt.Errorf("run sends: %w", err)
		}
		cmds := make([]*redis.SliceCmd, len(ids))
		_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				if id != "" {
					cmds[i] = p.HMGet(ctx, s.SendKey(id), "contact", "channel", "state", "reason", "at", "until")
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("run sends: %w", err)
		}
		for i, id := range ids {
			looked++
			pos++
			if cmds[i] == nil {
				continue // an erased send's blank entry
			}
			if sd := runSendFrom(id, run, cmds[i].Val()); sd != nil && f.match(sd) {
				if page.Sends = append(page.Sends, sd); len(page.Sends) == limit {
					break
				}
			}
		}
		if len(ids) < n {
			break // the index ends here
		}
	}
	// A page that stops at the index's last entry has no next one.
	total, err := s.Redis.LLen(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("run sends: %w", err)
	}
	if pos < total {
		page.Next = pos
	}
	return page, nil
}

// blankRunSendScript blanks a send's entry in its run's index. KEYS: the
// index. ARGV: the send id.
var blankRunSendScript = redis.NewScript(`
local i = redis.call('LPOS', KEYS[1], ARGV[1])
if i then redis.call('LSET', KEYS[1], i, '') end
return i
`)

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
