package console

import (
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
)

// analyticsView is the analytics page of a run or of a topic: the
// store's report, its chart, the period asked (a topic's), the errors
// by field.
type analyticsView struct {
	Report   *store.Report
	Run      *dispatcher.Run
	Topic    *dispatcher.Topic
	Chart    template.HTML
	Series   []seriesLine
	From, To string
	Errors   map[string]string
}

// analyticsDays is a topic's period when none is asked, as the API's.
const analyticsDays = 30

// analyticsSeries are the chart's lines: what mailbox providers and
// recipients made of the messages, over time. Unsubscribes are the
// consents withdrawn, a STOP included (a carrier's opted-out report of
// the same STOP is not counted again).
var analyticsSeries = []seriesLine{
	{Name: "delivered", Color: colorSent, Of: func(c store.Counts) int64 { return c.Email.Delivered + c.SMS.Delivered }},
	{Name: "bounced", Color: "#f9a825", Of: func(c store.Counts) int64 { return c.Email.BouncedHard + c.Email.BouncedSoft + c.SMS.Undelivered }},
	{Name: "complained", Color: colorOther, Of: func(c store.Counts) int64 { return c.Email.Complained }},
	{Name: "unsubscribed", Color: "#6a1b9a", Of: func(c store.Counts) int64 { return c.Unsubscribed }},
}

func (c *Console) runAnalytics(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	run, err := c.st.Run(ctx, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	rep, err := c.st.RunAnalytics(ctx, run.ID, store.DefaultMinDomainRecipients)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	loc := c.location(userOf(r).user)
	v := analyticsView{Report: rep, Run: run, Series: analyticsSeries, Chart: seriesSVG(rep.Series, time.Hour, analyticsSeries, loc, "15:04")}
	c.render(w, r, http.StatusOK, "analytics.html", "campaigns", v, "")
}

func (c *Console) topicAnalytics(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := c.st.Topic(ctx, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	q := r.URL.Query()
	to := c.d.Config.Now().UTC().Truncate(24 * time.Hour)
	from := to.AddDate(0, 0, 1-analyticsDays)
	v := analyticsView{Topic: t, Series: analyticsSeries, From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to"))}
	var ferr error
	if v.To != "" {
		if to, err = time.Parse(time.DateOnly, v.To); err != nil {
			ferr = dispatcher.Invalid("to", "must be a date (2026-03-01)")
		}
		from = to.AddDate(0, 0, 1-analyticsDays)
	}
	if v.From != "" && ferr == nil {
		if from, err = time.Parse(time.DateOnly, v.From); err != nil {
			ferr = dispatcher.Invalid("from", "must be a date (2026-03-01)")
		}
	}
	if ferr == nil {
		v.Report, ferr = c.st.TopicAnalytics(ctx, t.ID, from, to, store.DefaultMinDomainRecipients)
	}
	if ferr != nil {
		var pageErr string
		v.Errors, pageErr = fieldErrors(ferr)
		c.render(w, r, statusOf(ferr), "analytics.html", "topics", v, pageErr)
		return
	}
	v.From, v.To = from.Format(time.DateOnly), to.Format(time.DateOnly)
	v.Chart = seriesSVG(v.Report.Series, 24*time.Hour, analyticsSeries, time.UTC, "01-02")
	c.render(w, r, http.StatusOK, "analytics.html", "topics", v, "")
}
