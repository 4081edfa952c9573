package console

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
)

// count is a named counter, in the order a page lists them.
type count struct {
	Name  string
	N     int64
	Color string // in a chart and its legend
}

// runView is the run page's live part: what the page shows and each
// event replaces.
type runView struct {
	Run *dispatcher.Run
	// Active is true until the run is completed or cancelled.
	Active bool
	// Progress are planned, queued, deferred, sending, sent, failed and
	// cancelled; Reasons the gate's decisions; Outcomes every counter of
	// the run; Feedback what providers and recipients reported.
	Progress []count
	Reasons  []count
	Outcomes []count
	Feedback []count
	// Leaving are the sends waiting to leave, by when they may: now, by
	// hour over the next leavingHours, later.
	Leaving  []leaving
	Timeline template.HTML
	Gates    template.HTML
}

// leaving is how many sends may leave in a span: Now (from now on), the
// hour from From to To, or Later.
type leaving struct {
	From, To   time.Time
	Now, Later bool
	N          int64
}

// leavingHours is how far the run page shows deferred sends hour by hour.
const leavingHours = 48

// leaving counts the run's sends waiting to leave, by when they may: the
// spans with none are left out.
func (c *Console) leaving(ctx context.Context, run string) ([]leaving, error) {
	counts, err := c.d.Pipeline.Leaving(ctx, run, time.Hour, leavingHours)
	if err != nil {
		return nil, err
	}
	now := c.d.Config.Now().Truncate(time.Minute)
	var out []leaving
	for i, n := range counts {
		if n == 0 {
			continue
		}
		l := leaving{N: n, From: now.Add(time.Duration(i-1) * time.Hour), To: now.Add(time.Duration(i) * time.Hour)}
		l.Now, l.Later = i == 0, i == len(counts)-1
		out = append(out, l)
	}
	return out, nil
}

// progressNames are the run's main counters, in their order.
var progressNames = []string{"planned", dispatcher.StateQueued, dispatcher.StateDeferred, dispatcher.StateSending,
	dispatcher.StateSent, dispatcher.StateFailed, dispatcher.StateCancelled}

// feedbackNames are the feedback counters always shown.
var feedbackNames = []string{"delivered", "bounced_hard", "bounced_soft", "complained", "unsubscribes"}

func sorted(m map[string]int64) []count {
	out := make([]count, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, count{Name: k, N: m[k]})
	}
	return out
}

// liveView reads everything the run page shows.
func (c *Console) liveView(ctx context.Context, id string, loc *time.Location) (*runView, error) {
	run, err := c.st.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	dec, err := c.st.Decisions(ctx, id)
	if err != nil {
		return nil, err
	}
	minutes, err := c.st.RunMinutes(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &runView{Run: run, Active: run.State != dispatcher.RunCompleted && run.State != dispatcher.RunCancelled}
	if v.Active {
		if v.Leaving, err = c.leaving(ctx, id); err != nil {
			return nil, err
		}
	}
	for _, n := range progressNames {
		v.Progress = append(v.Progress, count{Name: n, N: run.Counters[n]})
	}
	v.Reasons = sorted(dec)
	for i := range v.Reasons {
		v.Reasons[i].Color = decisionColor(i, v.Reasons[i].Name)
	}
	outcomes := maps.Clone(run.Counters)
	delete(outcomes, "planned") // the first counter, not an outcome
	v.Outcomes = sorted(outcomes)
	fb := maps.Clone(run.Feedback)
	if fb == nil {
		fb = map[string]int64{}
	}
	for _, n := range feedbackNames {
		fb[n] += 0
	}
	v.Feedback = sorted(fb)
	v.Timeline = timelineSVG(minutes, loc)
	v.Gates = gatesSVG(v.Reasons)
	return v, nil
}

// runPage is the run page: the campaign it belongs to and the live part.
type runPage struct {
	Campaign *dispatcher.Campaign
	Live     *runView
}

func (c *Console) run(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v, err := c.liveView(ctx, r.PathValue("id"), c.location(userOf(r).user))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	cp, err := c.st.Campaign(ctx, v.Run.Campaign)
	if err != nil && !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		c.fail(w, r, nil, err)
		return
	}
	if err != nil {
		cp = &dispatcher.Campaign{ID: v.Run.Campaign}
	}
	c.render(w, r, http.StatusOK, "run.html", "campaigns", runPage{Campaign: cp, Live: v}, "")
}

// runAction pauses, resumes or cancels one run.
func (c *Console) runAction(w http.ResponseWriter, r *http.Request) {
	id, a := r.PathValue("id"), r.PathValue("action")
	if a != pipeline.ActionPause && a != pipeline.ActionResume && a != pipeline.ActionCancel {
		c.fail(w, r, nil, dispatcher.NotFound("action"))
		return
	}
	if _, err := c.d.Pipeline.SetRunState(r.Context(), id, a); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.audit(r, "run."+a, id, "")
	http.Redirect(w, r, c.cfg.Path+"/runs/"+id, http.StatusSeeOther)
}

// runEvents streams the run page's live part as server-sent events: an
// "update" event every LiveEvery while the run is active, whose data is
// the part's HTML, rendered as the page renders it; then, once the run has
// ended, a last update and an "end" event.
func (c *Console) runEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := c.st.Run(ctx, id); err != nil {
		dispatcher.WriteError(w, err)
		return
	}
	lang := c.lang(w, r)
	u := userOf(r)
	loc := c.location(u.user)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(c.cfg.LiveEvery)
	defer tick.Stop()
	for {
		// The server's write timeout would cut the stream: each event
		// gets its own.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		v, err := c.liveView(ctx, id, loc)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Error("console: run events", "error", err)
			}
			return
		}
		var buf bytes.Buffer
		data := pageData{Lang: lang, Base: c.cfg.Path, Loc: loc, User: u.user, CSRF: c.csrfToken(u.sid), View: v}
		if err := c.pages["run.html"].ExecuteTemplate(&buf, "live", data); err != nil {
			c.log.Error("console: run events", "error", err)
			return
		}
		var ev strings.Builder
		ev.WriteString("event: update\n")
		for _, line := range strings.Split(buf.String(), "\n") {
			fmt.Fprintf(&ev, "data: %s\n", line)
		}
		ev.WriteString("\n")
		if !v.Active {
			ev.WriteString("event: end\ndata: " + v.Run.State + "\n\n")
		}
		if _, err := w.Write([]byte(ev.String())); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if !v.Active {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A session signed out or expired meanwhile ends the stream.
		if _, err := c.st.ConsoleSession(ctx, hashID(u.sid)); err != nil {
			return
		}
	}
}
