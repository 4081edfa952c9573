package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/outbound"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// auditBody keeps the body of a call whose audit target is in the body
// (suppressions carry their address there, never in the URL). It holds
// what the handler read, which decodeJSON bounds.
type auditBody struct{ buf bytes.Buffer }

// captureBody tees the request body for the actions whose target must be
// derived from it; nil for the others.
func captureBody(r *http.Request, action string) *auditBody {
	if !strings.HasPrefix(action, "suppression.") || r.Body == nil {
		return nil
	}
	b := &auditBody{}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(r.Body, &b.buf), r.Body}
	return b
}

// record appends the audit entry of a call that succeeded. A failure is
// logged, not returned: the change is made and the client must not retry
// it because the log could not be written.
func (a *handler) record(r *http.Request, action string, v any, body *auditBody) {
	e := &storepkg.AuditEntry{At: a.d.Config.Now().UTC(), Key: KeyID(r.Context()), Action: action, Target: r.PathValue("id")}
	switch v := v.(type) {
	case dispatcher.Campaign:
		e.Target = v.ID
	case *dispatcher.Campaign:
		e.Target = v.ID
	case campaignView:
		e.Target = v.ID
	case dispatcher.ConsentEvent:
		e.Detail = fmt.Sprintf("%s %s %s", v.Topic, v.Channel, v.State)
	case *storepkg.ImportResult:
		e.Detail = fmt.Sprintf("imported %d, failed %d", v.Imported, v.Failed)
	case outbound.Endpoint:
		e.Target = v.ID // never the URL nor the secret
	}
	if body != nil {
		var in addressRequest
		if json.Unmarshal(body.buf.Bytes(), &in) == nil && in.Channel.Valid() && in.Address != "" {
			e.Target = a.d.Store.AddressHash(in.Channel, in.Address)
			e.Detail = string(in.Channel)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := a.d.Store.AppendAudit(ctx, e); err != nil {
		a.d.Logger.Error("api: audit entry lost", "action", action, "key", e.Key, "error", err)
	}
}

var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// getAudit answers GET /v1/audit?limit=100[&before=<id>]: the newest
// entries first; before pages back from an entry id.
func (a *handler) getAudit(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	limit := int64(100)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > 1000 {
			return 0, nil, dispatcher.Invalid("limit", "must be a whole number from 1 to 1000")
		}
		limit = n
	}
	before := q.Get("before")
	if before != "" && !streamID.MatchString(before) {
		return 0, nil, dispatcher.Invalid("before", "must be the id of an audit entry")
	}
	es, err := a.d.Store.Audit(r.Context(), limit, before)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string][]storepkg.AuditEntry{"entries": es}, nil
}
