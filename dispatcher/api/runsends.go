package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// Who received a run's message and who was missed: GET
// /v1/runs/{id}/sends lists the run's sends, by outcome and reason, page
// by page, within the send retention. It names contacts by id only.

const (
	runSendsDefaultLimit = 100
	runSendsMaxLimit     = 500
	// runSendsBudget is how many of the run's sends a page looks at per
	// send it may return: a filter that matches little gives short pages
	// rather than one request that reads the whole run.
	runSendsBudget = 10
)

// runSendOutcomes are the states a listing may ask for.
var runSendOutcomes = []string{
	dispatcher.StateQueued, dispatcher.StateDeferred, dispatcher.StateSending, dispatcher.StateSent,
	dispatcher.StateDelivered, dispatcher.StateBounced, dispatcher.StateFailed, dispatcher.StateSuppressed,
	dispatcher.StateCancelled,
}

var reasonPattern = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// RunSend is one send of a run as listed: ids, never an address.
type RunSend struct {
	Send    string        `json:"send"`
	Contact string        `json:"contact"`
	Channel channels.Kind `json:"channel"`
	State   string        `json:"state"`
	Reason  string        `json:"reason,omitempty"`
	Until   time.Time     `json:"until,omitzero"`
	At      time.Time     `json:"at"`
}

// RunSends is the answer to GET /v1/runs/{id}/sends.
type RunSends struct {
	Run   string    `json:"run"`
	Sends []RunSend `json:"sends"`
	// NextCursor, when set, is the cursor of the next page. A page may
	// hold fewer sends than the limit, even none, and still have one.
	NextCursor string `json:"next_cursor,omitempty"`
}

// runCursor is the opaque cursor of a position in a run's index, bound to
// the run: "<position>.<run tag>", base64url.
func runCursor(run string, pos int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(pos, 10) + "." + runTag(run)))
}

func parseRunCursor(run, c string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	p, tag, ok := strings.Cut(string(b), ".")
	pos, err := strconv.ParseInt(p, 10, 64)
	if !ok || err != nil || pos < 1 || tag != runTag(run) {
		return 0, false
	}
	return pos, true
}

func runTag(run string) string {
	h := sha256.Sum256([]byte(run))
	return hex.EncodeToString(h[:4])
}

func (a *handler) listRunSends(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	run := r.PathValue("id")
	var f storepkg.RunSendsFilter
	if v := q.Get("outcome"); v != "" {
		if !slices.Contains(runSendOutcomes, v) {
			return 0, nil, dispatcher.Invalid("outcome", "must be one of %s", strings.Join(runSendOutcomes, ", "))
		}
		f.State = v
	}
	if v := q.Get("reason"); v != "" {
		if !reasonPattern.MatchString(v) {
			return 0, nil, dispatcher.Invalid("reason", "must be a reason: lower case letters, digits and _ (64 at most)")
		}
		f.Reason = v
	}
	limit := runSendsDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > runSendsMaxLimit {
			return 0, nil, dispatcher.Invalid("limit", "must be a whole number from 1 to %d", runSendsMaxLimit)
		}
		limit = n
	}
	var from int64
	if v := q.Get("cursor"); v != "" {
		var ok bool
		if from, ok = parseRunCursor(run, v); !ok {
			return 0, nil, dispatcher.Invalid("cursor", "must be a next_cursor this listing of this run gave")
		}
	}
	ctx := r.Context()
	if _, err := a.d.Store.Run(ctx, run); err != nil {
		return 0, nil, err
	}
	page, err := a.d.Store.RunSends(ctx, run, from, limit, runSendsBudget*limit, f)
	if err != nil {
		return 0, nil, err
	}
	out := RunSends{Run: run, Sends: make([]RunSend, len(page.Sends))}
	for i, sd := range page.Sends {
		out.Sends[i] = RunSend{Send: sd.ID, Contact: sd.Contact, Channel: sd.Channel, State: sd.State, Reason: sd.Reason,
			Until: sd.Until, At: sd.UpdatedAt}
	}
	if page.Next > 0 {
		out.NextCursor = runCursor(run, page.Next)
	}
	return http.StatusOK, out, nil
}
