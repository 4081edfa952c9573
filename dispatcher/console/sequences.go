package console

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/page"
	"github.com/missive-dev/missive/dispatcher/sequence"
)

// sequenceRow is a sequence with its counts: a line of the list, the head
// of its page.
type sequenceRow struct {
	dispatcher.Sequence
	Stats *sequence.Stats
	// Stopped are the enrolments stopped, by reason, every known reason
	// shown.
	Stopped []count
	// StoppedTotal sums Stopped.
	StoppedTotal int64
}

// stopReasons are the reasons always shown, in this order.
var stopReasons = []string{dispatcher.StopLeftTopic, dispatcher.StopTag, dispatcher.StopComplaint, dispatcher.StopByOperator}

// sequenceRowOf reads the counts of seq.
func (c *Console) sequenceRowOf(ctx context.Context, seq dispatcher.Sequence) (sequenceRow, error) {
	st, err := c.d.Sequences.Stats(ctx, seq.ID)
	if err != nil {
		return sequenceRow{}, err
	}
	row := sequenceRow{Sequence: seq, Stats: st}
	for _, reason := range stopReasons {
		row.Stopped = append(row.Stopped, count{Name: reason, N: st.Stopped[reason]})
	}
	for _, reason := range slices.Sorted(maps.Keys(st.Stopped)) {
		if !slices.Contains(stopReasons, reason) {
			row.Stopped = append(row.Stopped, count{Name: reason, N: st.Stopped[reason]})
		}
	}
	for _, n := range row.Stopped {
		row.StoppedTotal += n.N
	}
	return row, nil
}

func (c *Console) sequences(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ss, err := c.st.Sequences(ctx)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	rows := make([]sequenceRow, 0, len(ss))
	for _, s := range ss {
		row, err := c.sequenceRowOf(ctx, s)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		rows = append(rows, row)
	}
	c.render(w, r, http.StatusOK, "sequences.html", "sequences", rows, "")
}

// stepRow is a row of the form's steps, as typed: a wait (days, duration,
// at) or a send (channel, template, fallback), or an empty row, which is
// ignored.
type stepRow struct {
	Kind, Days, Duration, At, Channel, Template, Fallback string
	// Errors are the row's errors by its field's name (kind, days,
	// duration, at, channel, template, fallback).
	Errors map[string]string
}

// stepFields are the fields of a step row, in the order they show.
var stepFields = []string{"kind", "days", "duration", "at", "channel", "template", "fallback"}

func (s *stepRow) get(field string) *string {
	switch field {
	case "kind":
		return &s.Kind
	case "days":
		return &s.Days
	case "duration":
		return &s.Duration
	case "at":
		return &s.At
	case "channel":
		return &s.Channel
	case "template":
		return &s.Template
	case "fallback":
		return &s.Fallback
	}
	return nil
}

func (s *stepRow) empty() bool {
	for _, f := range stepFields {
		if *s.get(f) != "" {
			return false
		}
	}
	return true
}

func (s *stepRow) fail(field, msg string) {
	if s.Errors == nil {
		s.Errors = map[string]string{}
	}
	s.Errors[field] = msg
}

// templateChoice is a template the steps may send, with its parts.
type templateChoice struct {
	ID    string
	Parts []channels.Kind
}

// sequenceForm is the form of a sequence: the values typed, its step
// rows, the records to choose from, the errors by field.
type sequenceForm struct {
	New       bool
	Form      map[string]string
	Rows      []stepRow
	Errors    map[string]string
	Topics    []dispatcher.Topic
	Templates []templateChoice
}

// sequenceView is the sequence page (Seq set) or the new sequence page:
// the sequence in words with its counts, and the form that makes its
// next version.
type sequenceView struct {
	Seq *sequenceRow
	// Saved is the version just saved; Unchanged says a save made none.
	Saved     int
	Unchanged bool
	Edit      sequenceForm
}

// emptyStepRows are the empty rows the form offers after the steps.
const emptyStepRows = 3

// maxStepRows bounds the rows a form may post; Sequence.Validate bounds
// the steps.
const maxStepRows = 64

// sequenceFormOf is seq as its form shows it.
func sequenceFormOf(seq *dispatcher.Sequence) sequenceForm {
	f := map[string]string{"id": seq.ID, "name": seq.Name, "topic": seq.Topic, "trigger.tag": seq.Trigger.Tag,
		"stop_tags": strings.Join(seq.StopTags, ", ")}
	if seq.Trigger.Signup {
		f["trigger.signup"] = "on"
	}
	if seq.Reenrol {
		f["reenrol"] = "on"
	}
	v := sequenceForm{Form: f}
	for _, st := range seq.Steps {
		var row stepRow
		if w := st.Wait; w != nil {
			row = stepRow{Kind: "wait", Duration: w.Duration, At: w.At}
			if w.Days != 0 {
				row.Days = strconv.Itoa(w.Days)
			}
		} else if sd := st.Send; sd != nil {
			row = stepRow{Kind: "send", Channel: string(sd.Channel), Template: sd.Template, Fallback: string(sd.Fallback)}
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

// readSequence reads the sequence form. It returns the sequence, the form
// as typed, the form's row of each step (empty rows are skipped), and
// whether the rows could be read: a row's errors (a kind missing, days
// that are not a number) are in the row.
func readSequence(r *http.Request) (*dispatcher.Sequence, sequenceForm, []int, bool) {
	f := map[string]string{}
	for _, k := range []string{"id", "name", "topic", "trigger.signup", "trigger.tag", "stop_tags", "reenrol", "move_enrolments"} {
		f[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	seq := &dispatcher.Sequence{ID: f["id"], Name: f["name"], Topic: f["topic"], StopTags: list(f["stop_tags"]),
		Trigger: dispatcher.SequenceTrigger{Signup: f["trigger.signup"] == "on", Tag: f["trigger.tag"]}, Reenrol: f["reenrol"] == "on"}
	rows := 0
	for k := range r.PostForm {
		if rest, ok := strings.CutPrefix(k, "steps."); ok {
			i, _, _ := strings.Cut(rest, ".")
			if n, err := strconv.Atoi(i); err == nil && n >= 0 && n < maxStepRows && n+1 > rows {
				rows = n + 1
			}
		}
	}
	v := sequenceForm{Form: f, Rows: make([]stepRow, rows)}
	var rowOf []int
	ok := true
	for i := range v.Rows {
		row := &v.Rows[i]
		for _, field := range stepFields {
			*row.get(field) = strings.TrimSpace(r.PostFormValue("steps." + strconv.Itoa(i) + "." + field))
		}
		if row.empty() {
			continue
		}
		var st dispatcher.SequenceStep
		switch row.Kind {
		case "wait":
			w := &dispatcher.Wait{Duration: row.Duration, At: row.At}
			if row.Days != "" {
				d, err := strconv.Atoi(row.Days)
				if err != nil {
					row.fail("days", "must be a whole number of days")
					ok = false
				}
				w.Days = d
			}
			st.Wait = w
		case "send":
			st.Send = &dispatcher.StepSend{Channel: channels.Kind(row.Channel), Template: row.Template, Fallback: channels.Kind(row.Fallback)}
		default:
			row.fail("kind", "must be a wait or a send")
			ok = false
		}
		seq.Steps = append(seq.Steps, st)
		rowOf = append(rowOf, i)
	}
	return seq, v, rowOf, ok
}

// stepError reads the field of a step's error: "steps[2].send.template"
// is the template of step 2; "steps[2]" and "steps[2].wait" are the step
// itself.
var stepError = regexp.MustCompile(`^steps\[(\d+)\](?:\.(?:wait|send))?(?:\.(\w+))?$`)

// topFields are the form's fields outside the steps that an error may
// name.
var topFields = []string{"id", "name", "topic", "trigger.tag", "stop_tags", "steps"}

// sequenceErrors puts err next to its field: a step's error in the form's
// row of that step (rowOf), another field's under it, any other on the
// page. It returns the page's message.
func sequenceErrors(v *sequenceForm, rowOf []int, err error) string {
	if err == nil {
		return ""
	}
	var e *dispatcher.Error
	if !errors.As(err, &e) || e.Code == dispatcher.CodeInternal {
		return "internal error"
	}
	if m := stepError.FindStringSubmatch(e.Field); m != nil {
		i, _ := strconv.Atoi(m[1])
		field := m[2]
		if field == "" || !slices.Contains(stepFields, field) {
			field = "kind"
		}
		if i < len(rowOf) && rowOf[i] < len(v.Rows) {
			v.Rows[rowOf[i]].fail(field, e.Message)
			return ""
		}
	}
	if slices.Contains(topFields, e.Field) {
		v.Errors = map[string]string{e.Field: e.Message}
		return ""
	}
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// formChoices fills the form's topics and templates, and adds the empty
// rows.
func (c *Console) formChoices(ctx context.Context, v *sequenceForm, addRows bool) error {
	var err error
	if v.Topics, err = c.st.Topics(ctx); err != nil {
		return err
	}
	ts, err := c.st.Templates(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		tc := templateChoice{ID: t.ID}
		if t.Email != nil {
			tc.Parts = append(tc.Parts, channels.Email)
		}
		if t.SMS != nil {
			tc.Parts = append(tc.Parts, channels.SMS)
		}
		v.Templates = append(v.Templates, tc)
	}
	// What the form holds stays a choice, even when its record is gone.
	for _, row := range v.Rows {
		if row.Template != "" && !slices.ContainsFunc(v.Templates, func(t templateChoice) bool { return t.ID == row.Template }) {
			v.Templates = append(v.Templates, templateChoice{ID: row.Template})
		}
	}
	if tp := v.Form["topic"]; tp != "" && !slices.ContainsFunc(v.Topics, func(t dispatcher.Topic) bool { return t.ID == tp }) {
		v.Topics = append(v.Topics, dispatcher.Topic{ID: tp, Name: tp})
	}
	if addRows {
		v.Rows = append(v.Rows, make([]stepRow, emptyStepRows)...)
	}
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	return nil
}

// sequencePage renders the page of the path's sequence, or the new
// sequence page when the path names none; edit is the form as typed (nil:
// the sequence's own).
func (c *Console) sequencePage(w http.ResponseWriter, r *http.Request, status int, edit *sequenceForm, pageErr string) {
	ctx := r.Context()
	var v sequenceView
	if id := r.PathValue("id"); id != "" {
		seq, err := c.st.Sequence(ctx, id)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		row, err := c.sequenceRowOf(ctx, *seq)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		v.Seq = &row
		if n, err := strconv.Atoi(r.URL.Query().Get("saved")); err == nil && n == seq.Version {
			v.Saved = n
		}
		v.Unchanged = r.URL.Query().Get("saved") == "none"
	}
	if edit != nil {
		v.Edit = *edit
	} else if v.Seq != nil {
		v.Edit = sequenceFormOf(&v.Seq.Sequence)
	} else {
		v.Edit = sequenceForm{New: true}
	}
	if err := c.formChoices(ctx, &v.Edit, edit == nil); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.render(w, r, status, "sequence.html", "sequences", v, pageErr)
}

func (c *Console) sequencePageGet(w http.ResponseWriter, r *http.Request) {
	c.sequencePage(w, r, http.StatusOK, nil, "")
}

// putSequence makes a new sequence (POST /sequences) or the next version
// of one (POST /sequences/{id}) through Sequences.Put, as the API's PUT
// does; a refused form comes back as typed, with the error next to the
// field it names.
func (c *Console) putSequence(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	seq, v, rowOf, ok := readSequence(r)
	id := r.PathValue("id")
	v.New = id == ""
	move := false
	var err error
	if v.New {
		if _, gerr := c.st.Sequence(ctx, seq.ID); gerr == nil {
			err = &dispatcher.Error{Code: dispatcher.CodeConflict, Field: "id", Message: "a sequence has this id already"}
		}
	} else {
		if _, err := c.st.Sequence(ctx, id); err != nil {
			c.fail(w, r, nil, err)
			return
		}
		seq.ID, v.Form["id"] = id, id
		move = v.Form["move_enrolments"] == "on"
	}
	var out *dispatcher.Sequence
	made := false
	if err == nil && ok {
		out, made, err = c.d.Sequences.Put(ctx, seq, move)
	}
	if err != nil || !ok {
		// A row that cannot be read shows its own error.
		status := http.StatusUnprocessableEntity
		if err != nil {
			status = statusOf(err)
		}
		c.sequencePage(w, r, status, &v, sequenceErrors(&v, rowOf, err))
		return
	}
	saved := "none"
	if made {
		detail := "version " + strconv.Itoa(out.Version)
		if move {
			detail += ", enrolments moved"
		}
		c.audit(r, "sequence.put", out.ID, detail)
		saved = strconv.Itoa(out.Version)
	}
	http.Redirect(w, r, c.cfg.Path+"/sequences/"+out.ID+"?saved="+saved, http.StatusSeeOther)
}

// sequenceAction pauses or resumes a sequence, then goes back to the
// list or the sequence's page, whichever sent the form.
func (c *Console) sequenceAction(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	var paused bool
	switch action {
	case "pause":
		paused = true
	case "resume":
	default:
		c.fail(w, r, nil, dispatcher.NotFound("action"))
		return
	}
	if _, err := c.d.Sequences.SetPaused(r.Context(), id, paused); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.audit(r, "sequence."+action, id, "")
	back := c.cfg.Path + "/sequences/" + id
	if r.PostFormValue("from") == "list" {
		back = c.cfg.Path + "/sequences"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// stopEnrolment ends the contact's active enrolment in a sequence, by an
// operator (Sequences.Stop), then shows the contact again.
func (c *Console) stopEnrolment(w http.ResponseWriter, r *http.Request) {
	ct, err := c.contactOf(r)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	seq := r.PathValue("seq")
	if _, err := c.d.Sequences.Stop(r.Context(), seq, ct.ID); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.audit(r, "enrolment.stop", seq, "contact "+ct.ID)
	http.Redirect(w, r, c.cfg.Path+"/contacts/"+ct.ID, http.StatusSeeOther)
}

// stepWords says a step in words: "Wait 2 days, until 09:00 in the
// recipient's zone", "Send email welcome-2, else SMS".
func stepWords(l page.Lang, st dispatcher.SequenceStep) string {
	if w := st.Wait; w != nil {
		return waitWords(l, w)
	}
	if sd := st.Send; sd != nil {
		return sendWords(l, string(sd.Channel), sd.Template, string(sd.Fallback))
	}
	return ""
}

// nextWords says an enrolment's next action.
func nextWords(l page.Lang, n *sequence.Next) string {
	switch n.Action {
	case "send":
		return sendWords(l, n.Channel, n.Template, n.Fallback)
	case "wait":
		return must1(text(l, "seq.next.wait"))
	}
	return must1(text(l, "seq.next.end"))
}

func sendWords(l page.Lang, channel, template, fallback string) string {
	s, err := text(l, "seq.send."+channel, template)
	if err != nil {
		s = must1(text(l, "seq.send", channel, template))
	}
	if fallback != "" {
		s += label(l, "seq.else.", fallback)
	}
	return s
}

func waitWords(l page.Lang, w *dispatcher.Wait) string {
	var parts []string
	if w.Days > 0 {
		parts = append(parts, units(l, "day", w.Days))
	}
	if w.Duration != "" {
		d, err := time.ParseDuration(w.Duration)
		switch {
		case err != nil:
			parts = append(parts, w.Duration)
		case d > 0:
			h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
			for _, u := range []struct {
				name string
				n    int
			}{{"hour", h}, {"minute", m}, {"second", s}} {
				if u.n > 0 {
					parts = append(parts, units(l, u.name, u.n))
				}
			}
		}
	}
	span := ""
	if len(parts) > 0 {
		span = strings.Join(parts[:len(parts)-1], ", ")
		if span != "" {
			span += must1(text(l, "seq.and"))
		}
		span += parts[len(parts)-1]
	}
	switch {
	case w.At != "" && span != "":
		return must1(text(l, "seq.wait.at", span, w.At))
	case w.At != "":
		return must1(text(l, "seq.wait.onlyat", w.At))
	}
	return must1(text(l, "seq.wait", span))
}

// units is n of a unit in words: "1 day", "2 days" (French: "0 jour" and
// "1 jour" are singular).
func units(l page.Lang, unit string, n int) string {
	form := "other"
	if n == 1 || (l == page.French && n == 0) {
		form = "one"
	}
	return must1(text(l, "unit."+unit+"."+form, n))
}

// must1 returns a catalogue string whose key the package names itself:
// a test renders each.
func must1(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return s
}
