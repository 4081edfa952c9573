package console

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/templates"
)

// campaignRow is a line of the campaign list.
type campaignRow struct {
	dispatcher.Campaign
	LastRun *dispatcher.Run
}

func (c *Console) campaigns(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cs, err := c.st.Campaigns(ctx)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	rows := make([]campaignRow, len(cs))
	for i, cp := range cs {
		rows[i].Campaign = cp
		if cp.LastRun == "" {
			continue
		}
		if run, err := c.st.Run(ctx, cp.LastRun); err == nil {
			rows[i].LastRun = run
		}
	}
	c.render(w, r, http.StatusOK, "campaigns.html", "campaigns", rows, "")
}

// formView is the campaign form: the values typed, the records to choose
// from, the errors by field.
type formView struct {
	New       bool
	Form      map[string]string
	Topics    []dispatcher.Topic
	Segments  []dispatcher.Segment
	Email     []templates.Template // templates with an email part
	SMS       []templates.Template // templates with an SMS part
	Orders    []string             // the channel choices
	Errors    map[string]string
	Campaign  *dispatcher.Campaign
	Templates map[string]string
}

// channelOrders are the channel choices: one channel, or both in an
// order (which counts with fallback).
var channelOrders = []string{"email", "sms", "email,sms", "sms,email"}

func (c *Console) formPage(w http.ResponseWriter, r *http.Request, status int, v formView, err error) {
	ctx := r.Context()
	var lerr error
	if v.Topics, lerr = c.st.Topics(ctx); lerr != nil {
		c.fail(w, r, nil, lerr)
		return
	}
	if v.Segments, lerr = c.st.Segments(ctx); lerr != nil {
		c.fail(w, r, nil, lerr)
		return
	}
	ts, lerr := c.st.Templates(ctx)
	if lerr != nil {
		c.fail(w, r, nil, lerr)
		return
	}
	for _, t := range ts {
		if t.Email != nil {
			v.Email = append(v.Email, t)
		}
		if t.SMS != nil {
			v.SMS = append(v.SMS, t)
		}
	}
	v.Orders = channelOrders
	var pageErr string
	v.Errors, pageErr = fieldErrors(err)
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	c.render(w, r, status, "campaign_form.html", "campaigns", v, pageErr)
}

func (c *Console) newCampaign(w http.ResponseWriter, r *http.Request) {
	c.formPage(w, r, http.StatusOK, formView{New: true, Form: map[string]string{"channels": "email"}}, nil)
}

func (c *Console) editCampaign(w http.ResponseWriter, r *http.Request) {
	cp, err := c.st.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.formPage(w, r, http.StatusOK, formView{Form: campaignForm(cp), Campaign: cp}, nil)
}

// campaignForm is a campaign as the form shows it.
func campaignForm(cp *dispatcher.Campaign) map[string]string {
	var chs []string
	for _, k := range cp.Channels {
		chs = append(chs, string(k))
	}
	f := map[string]string{"id": cp.ID, "name": cp.Name, "topic": cp.Topic, "segment": cp.Segment,
		"channels": strings.Join(chs, ","), "rate_limit": cp.RateLimit,
		"templates.email": cp.Templates[channels.Email], "templates.sms": cp.Templates[channels.SMS]}
	if cp.Fallback {
		f["fallback"] = "on"
	}
	return f
}

// readCampaign reads the campaign form. The pipeline validates it.
func readCampaign(r *http.Request) (*dispatcher.Campaign, map[string]string) {
	f := map[string]string{}
	for _, k := range []string{"id", "name", "topic", "segment", "channels", "rate_limit", "templates.email", "templates.sms", "fallback"} {
		f[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	cp := &dispatcher.Campaign{ID: f["id"], Name: f["name"], Topic: f["topic"], Segment: f["segment"], RateLimit: f["rate_limit"],
		Fallback: f["fallback"] == "on", Templates: map[channels.Kind]string{}}
	if slices.Contains(channelOrders, f["channels"]) {
		for _, k := range strings.Split(f["channels"], ",") {
			cp.Channels = append(cp.Channels, channels.Kind(k))
			if t := f["templates."+k]; t != "" {
				cp.Templates[channels.Kind(k)] = t
			}
		}
	}
	return cp, f
}

func (c *Console) createCampaign(w http.ResponseWriter, r *http.Request) {
	cp, f := readCampaign(r)
	if err := c.d.Pipeline.CreateCampaign(r.Context(), cp); err != nil {
		c.formPage(w, r, statusOf(err), formView{New: true, Form: f}, err)
		return
	}
	c.audit(r, "campaign.create", cp.ID, "")
	http.Redirect(w, r, c.cfg.Path+"/campaigns/"+cp.ID, http.StatusSeeOther)
}

func (c *Console) saveCampaign(w http.ResponseWriter, r *http.Request) {
	cp, f := readCampaign(r)
	cp.ID, f["id"] = r.PathValue("id"), r.PathValue("id")
	if _, err := c.d.Pipeline.EditCampaign(r.Context(), cp); err != nil {
		c.formPage(w, r, statusOf(err), formView{Form: f, Campaign: cp}, err)
		return
	}
	c.audit(r, "campaign.edit", cp.ID, "")
	http.Redirect(w, r, c.cfg.Path+"/campaigns/"+cp.ID, http.StatusSeeOther)
}

// campaignView is the campaign page: the campaign, its schedule form (with
// a preview of the times it would fire), its next fires and its runs.
type campaignView struct {
	Campaign  *dispatcher.Campaign
	NextFires []time.Time
	Runs      []pipeline.RunStats
	Schedule  map[string]string
	Preview   []time.Time
	Previewed bool
	Errors    map[string]string
	Zones     []string
}

// nextFires is how many fire times the pages show, as the API does.
const nextFires = 5

func (c *Console) campaign(w http.ResponseWriter, r *http.Request) {
	c.campaignPage(w, r, http.StatusOK, nil, nil, nil)
}

// campaignPage renders the campaign page; form holds the schedule typed
// (nil: the campaign's own), preview the fire times previewed.
func (c *Console) campaignPage(w http.ResponseWriter, r *http.Request, status int, form map[string]string, preview []time.Time, err error) {
	ctx := r.Context()
	cp, cerr := c.st.Campaign(ctx, r.PathValue("id"))
	if cerr != nil {
		c.fail(w, r, nil, cerr)
		return
	}
	runs, cerr := c.d.Pipeline.CampaignStats(ctx, cp.ID)
	if cerr != nil {
		c.fail(w, r, nil, cerr)
		return
	}
	loc := c.location(userOf(r).user)
	if form == nil {
		form = scheduleForm(cp.Schedule, loc)
	}
	v := campaignView{Campaign: cp, NextFires: cp.NextFires(c.d.Config.Now(), nextFires), Runs: runs, Schedule: form,
		Preview: preview, Previewed: form["op"] == "preview" && err == nil, Zones: zones(loc.String(), form["tz"])}
	var pageErr string
	v.Errors, pageErr = fieldErrors(err)
	c.render(w, r, status, "campaign.html", "campaigns", v, pageErr)
}

// zones are the zones the schedule form offers: the user's, the one
// typed, and common ones.
func zones(mine, typed string) []string {
	out := []string{mine}
	for _, z := range []string{typed, "UTC", "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo"} {
		if z != "" && !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	return out
}

// dateTimeLocal is the layout of an <input type="datetime-local">.
const dateTimeLocal = "2006-01-02T15:04"

// scheduleForm is a schedule as the form shows it, in loc.
func scheduleForm(s *dispatcher.Schedule, loc *time.Location) map[string]string {
	f := map[string]string{"kind": "cron", "tz": loc.String()}
	if s == nil {
		return f
	}
	f["cron"], f["local_time"] = s.Cron, s.LocalTime
	if s.TZ != "" {
		f["tz"] = s.TZ
	}
	if !s.At.IsZero() {
		f["kind"], f["at"] = "once", s.At.In(loc).Format(dateTimeLocal)
	}
	return f
}

// readSchedule reads the schedule form: a date-time in the user's zone,
// or a cron spec in a zone; a local time per recipient with either.
// Returns an error with code invalid naming the field when the date-time
// cannot be read; Schedule.Validate checks the rest.
func readSchedule(r *http.Request, loc *time.Location) (dispatcher.Schedule, map[string]string, error) {
	f := map[string]string{}
	for _, k := range []string{"kind", "at", "cron", "tz", "local_time", "op"} {
		f[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	s := dispatcher.Schedule{LocalTime: f["local_time"]}
	switch f["kind"] {
	case "once":
		at, err := time.ParseInLocation(dateTimeLocal, f["at"], loc)
		if err != nil {
			return s, f, dispatcher.Invalid("at", "must be a date and time (YYYY-MM-DDTHH:MM)")
		}
		s.At = at.UTC()
	case "cron":
		s.Cron, s.TZ = f["cron"], f["tz"]
	default:
		return s, f, dispatcher.Invalid("kind", "must be once or cron")
	}
	return s, f, nil
}

// scheduleCampaign previews (op=preview) or saves a schedule. A preview
// validates the schedule as saving it would and lists the next times it
// fires; it changes nothing.
func (c *Console) scheduleCampaign(w http.ResponseWriter, r *http.Request) {
	loc := c.location(userOf(r).user)
	s, form, err := readSchedule(r, loc)
	if err == nil {
		err = s.Validate()
	}
	if err != nil {
		c.campaignPage(w, r, statusOf(err), form, nil, scheduleField(err))
		return
	}
	if form["op"] == "preview" {
		now := c.d.Config.Now()
		probe := dispatcher.Campaign{State: dispatcher.Scheduled, Schedule: &s}
		c.campaignPage(w, r, http.StatusOK, form, probe.NextFires(now, nextFires), nil)
		return
	}
	if _, err := c.d.Pipeline.ScheduleCampaign(r.Context(), r.PathValue("id"), s); err != nil {
		c.campaignPage(w, r, statusOf(err), form, nil, scheduleField(err))
		return
	}
	c.audit(r, "campaign.schedule", r.PathValue("id"), "")
	http.Redirect(w, r, c.cfg.Path+"/campaigns/"+r.PathValue("id"), http.StatusSeeOther)
}

// scheduleField names the schedule form's field of err: "schedule.cron"
// is the form's "cron".
func scheduleField(err error) error {
	if e, ok := err.(*dispatcher.Error); ok {
		cp := *e
		cp.Field = strings.TrimPrefix(cp.Field, "schedule.")
		return &cp
	}
	return err
}

// campaignAction starts, pauses, resumes or cancels a campaign.
func (c *Console) campaignAction(w http.ResponseWriter, r *http.Request) {
	ctx, id := r.Context(), r.PathValue("id")
	var err error
	switch a := r.PathValue("action"); a {
	case "start":
		var started pipeline.Started
		started, err = c.d.Pipeline.Start(ctx, id, pipeline.StartOptions{})
		if err == nil {
			c.audit(r, "campaign.start", id, "run "+started.Run)
			http.Redirect(w, r, c.cfg.Path+"/runs/"+started.Run, http.StatusSeeOther)
			return
		}
	case pipeline.ActionPause, pipeline.ActionResume, pipeline.ActionCancel:
		_, err = c.d.Pipeline.SetCampaignState(ctx, id, a)
	default:
		err = dispatcher.NotFound("action")
	}
	if err != nil {
		c.campaignPage(w, r, statusOf(err), nil, nil, err)
		return
	}
	c.audit(r, "campaign."+r.PathValue("action"), id, "")
	http.Redirect(w, r, c.cfg.Path+"/campaigns/"+id, http.StatusSeeOther)
}
