package api

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// Campaign analytics: what became of a run's or a topic's messages, never
// of a person (Missive tracks no opens and no clicks).
//
// GET /v1/runs/{id}/analytics answers a storepkg.Report with hourly
// buckets; GET /v1/topics/{id}/analytics?from=2026-03-01&to=2026-03-31,
// with daily buckets (UTC), from and to both included, at most 400 days;
// without them, the last 30 days up to today. Both show each mailbox
// provider's or domain's email outcomes, and fold into "other" a domain
// with fewer than 10 recipients in the report (for a topic, in the
// largest run of the period), so that a small organisation's domain
// cannot point at a person. A query parameter these routes do not know is
// refused (400), so that a misspelt one is not silently ignored.

// defaultAnalyticsDays is a topic report's period when none is asked.
const defaultAnalyticsDays = 30

func (a *handler) runAnalytics(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := onlyParams(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	run, err := a.d.Store.Run(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	rep, err := a.d.Store.RunAnalytics(ctx, run.ID, storepkg.DefaultMinDomainRecipients)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

func (a *handler) topicAnalytics(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	if err := onlyParams(q, "from", "to"); err != nil {
		return 0, nil, err
	}
	to := a.d.Config.Now().UTC().Truncate(24 * time.Hour)
	from := to.AddDate(0, 0, 1-defaultAnalyticsDays)
	var err error
	if to, err = dateParam(q, "to", to); err != nil {
		return 0, nil, err
	}
	if q.Has("to") && !q.Has("from") {
		from = to.AddDate(0, 0, 1-defaultAnalyticsDays)
	}
	if from, err = dateParam(q, "from", from); err != nil {
		return 0, nil, err
	}
	if from.After(to) {
		return 0, nil, dispatcher.Invalid("from", "must be on or before to")
	}
	if to.Sub(from) >= storepkg.MaxAnalyticsDays*24*time.Hour {
		return 0, nil, dispatcher.Invalid("from", "must be at most %d days before to", storepkg.MaxAnalyticsDays-1)
	}
	ctx := r.Context()
	if _, err := a.d.Store.Topic(ctx, r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	rep, err := a.d.Store.TopicAnalytics(ctx, r.PathValue("id"), from, to, storepkg.DefaultMinDomainRecipients)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

// onlyParams refuses a query naming a parameter not in known, or one
// given twice.
func onlyParams(q url.Values, known ...string) error {
	for name, vs := range q {
		if !slices.Contains(known, name) {
			return dispatcher.Invalid(dispatcher.Truncate(name, 64), "is not a known parameter")
		}
		if len(vs) > 1 {
			return dispatcher.Invalid(name, "is given more than once")
		}
	}
	return nil
}

// dateParam reads the UTC day of parameter name: a date (2026-03-01) or
// an RFC 3339 time, whose UTC day is taken; def when it is absent.
func dateParam(q url.Values, name string, def time.Time) (time.Time, error) {
	if !q.Has(name) {
		return def, nil
	}
	s := q.Get(name)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Truncate(24 * time.Hour), nil
	}
	return time.Time{}, dispatcher.Invalid(name, "must be a date (2026-03-01) or an RFC 3339 time")
}
