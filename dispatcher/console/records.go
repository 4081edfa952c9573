package console

import (
	"net/http"
	"slices"
	"strings"

	"github.com/missive-dev/missive/dispatcher"
)

// segmentRow is a line of the segment list: the segment and how many
// contacts match it now.
type segmentRow struct {
	dispatcher.Segment
	Count int64
	// Counted is false when the count failed (it is left out, not the
	// page) or is not the user's to see (mayCount).
	Counted bool
}

// mayCount tells whether role may see how many contacts match sg. A
// count that narrows by contact data (a static list, attribute
// predicates) tells that data one question at a time, so, as the API
// asks the contacts scope for it, the console shows it to the role that
// sees contacts' personal data (seesPersonal); a count by tags is
// anyone's.
func mayCount(role string, sg *dispatcher.Segment) bool {
	return seesPersonal(role) || (len(sg.Contacts) == 0 && len(sg.Where) == 0)
}

func (c *Console) segments(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sgs, err := c.st.Segments(ctx)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	rows := make([]segmentRow, len(sgs))
	role := userOf(r).user.Role
	for i, sg := range sgs {
		rows[i].Segment = sg
		if !mayCount(role, &sg) {
			continue
		}
		n, err := c.st.CountSegment(ctx, sg.ID)
		if err != nil {
			c.log.Warn("console: segment count", "segment", sg.ID, "error", err)
			continue
		}
		rows[i].Count, rows[i].Counted = n, true
	}
	c.render(w, r, http.StatusOK, "segments.html", "segments", rows, "")
}

// recordView is the form of a segment or a topic: the values typed and
// the errors by field.
type recordView struct {
	New    bool
	Form   map[string]string
	Errors map[string]string
	// Counted says Count holds a segment's matching contacts.
	Counted bool
	Count   int64
	// Uncounted says the count is not the user's to see (mayCount).
	Uncounted bool
}

// segmentFields are the segment form's fields.
var segmentFields = []string{"id", "tags_all", "tags_any", "tags_none", "where", "contacts"}

// predicateOps are the attribute comparisons, as Predicate.Op names them.
var predicateOps = []string{"eq", "ne", "in", "prefix", "exists", "absent"}

// list splits a field of values separated by commas, spaces or lines.
func list(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// readSegment reads the segment form. The attribute predicates are one
// a line: "attr op value", in taking values separated by "|"; exists and
// absent take none. Returns an error with code invalid naming the field
// where for a line it cannot read; Segment.Validate checks the rest.
func readSegment(r *http.Request) (*dispatcher.Segment, map[string]string, error) {
	f := map[string]string{}
	for _, k := range segmentFields {
		f[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	sg := &dispatcher.Segment{ID: f["id"], TagsAll: list(f["tags_all"]), TagsAny: list(f["tags_any"]),
		TagsNone: list(f["tags_none"]), Contacts: list(f["contacts"])}
	for i, line := range strings.Split(f["where"], "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 || !slices.Contains(predicateOps, fields[1]) {
			return sg, f, dispatcher.Invalid("where", "line %d must be: attribute eq|ne|in|prefix|exists|absent value", i+1)
		}
		p := dispatcher.Predicate{Attr: fields[0], Op: fields[1]}
		value := strings.TrimSpace(strings.Join(fields[2:], " "))
		if p.Op == "in" {
			for _, v := range strings.Split(value, "|") {
				if v = strings.TrimSpace(v); v != "" {
					p.Values = append(p.Values, v)
				}
			}
		} else {
			p.Value = value
		}
		sg.Where = append(sg.Where, p)
	}
	return sg, f, nil
}

// segmentForm is a segment as its form shows it.
func segmentForm(sg *dispatcher.Segment) map[string]string {
	var where []string
	for _, p := range sg.Where {
		v := p.Value
		if p.Op == "in" {
			v = strings.Join(p.Values, " | ")
		}
		where = append(where, strings.TrimSpace(p.Attr+" "+p.Op+" "+v))
	}
	return map[string]string{"id": sg.ID, "tags_all": strings.Join(sg.TagsAll, ", "), "tags_any": strings.Join(sg.TagsAny, ", "),
		"tags_none": strings.Join(sg.TagsNone, ", "), "where": strings.Join(where, "\n"), "contacts": strings.Join(sg.Contacts, "\n")}
}

func (c *Console) recordPage(w http.ResponseWriter, r *http.Request, status int, name, nav string, v recordView, err error) {
	var pageErr string
	v.Errors, pageErr = fieldErrors(err)
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	c.render(w, r, status, name, nav, v, pageErr)
}

func (c *Console) newSegment(w http.ResponseWriter, r *http.Request) {
	c.recordPage(w, r, http.StatusOK, "segment_form.html", "segments", recordView{New: true}, nil)
}

func (c *Console) segment(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sg, err := c.st.Segment(ctx, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	v := recordView{Form: segmentForm(sg)}
	if !mayCount(userOf(r).user.Role, sg) {
		v.Uncounted = true
	} else if n, err := c.st.CountSegment(ctx, sg.ID); err == nil {
		v.Counted, v.Count = true, n
	}
	c.recordPage(w, r, http.StatusOK, "segment_form.html", "segments", v, nil)
}

func (c *Console) putSegment(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sg, f, err := readSegment(r)
	v := recordView{New: r.PathValue("id") == "", Form: f}
	if !v.New {
		sg.ID, f["id"] = r.PathValue("id"), r.PathValue("id")
		if _, err := c.st.Segment(ctx, sg.ID); err != nil {
			c.fail(w, r, nil, err)
			return
		}
	} else if _, gerr := c.st.Segment(ctx, sg.ID); err == nil && gerr == nil {
		err = &dispatcher.Error{Code: dispatcher.CodeConflict, Field: "id", Message: "a segment has this id already"}
	}
	if err == nil {
		err = c.st.PutSegment(ctx, sg)
	}
	if err != nil {
		c.recordPage(w, r, statusOf(err), "segment_form.html", "segments", v, err)
		return
	}
	c.audit(r, "segment.put", sg.ID, "")
	http.Redirect(w, r, c.cfg.Path+"/segments/"+sg.ID, http.StatusSeeOther)
}

// topicRow is a line of the topic list: the topic and its feedback
// counters.
type topicRow struct {
	dispatcher.Topic
	Feedback []count
}

func (c *Console) topics(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ts, err := c.st.Topics(ctx)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	rows := make([]topicRow, len(ts))
	for i, t := range ts {
		rows[i].Topic = t
		fb, err := c.st.TopicFeedback(ctx, t.ID)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if fb == nil {
			fb = map[string]int64{}
		}
		for _, n := range feedbackNames {
			fb[n] += 0
		}
		rows[i].Feedback = sorted(fb)
	}
	c.render(w, r, http.StatusOK, "topics.html", "topics", rows, "")
}

// topicFields are the topic form's fields.
var topicFields = []string{"id", "name", "kind", "description"}

func (c *Console) newTopic(w http.ResponseWriter, r *http.Request) {
	c.recordPage(w, r, http.StatusOK, "topic_form.html", "topics", recordView{New: true, Form: map[string]string{"kind": string(dispatcher.Marketing)}}, nil)
}

func (c *Console) topic(w http.ResponseWriter, r *http.Request) {
	t, err := c.st.Topic(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	f := map[string]string{"id": t.ID, "name": t.Name, "kind": string(t.Kind), "description": t.Description}
	c.recordPage(w, r, http.StatusOK, "topic_form.html", "topics", recordView{Form: f}, nil)
}

func (c *Console) putTopic(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := map[string]string{}
	for _, k := range topicFields {
		f[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	v := recordView{New: r.PathValue("id") == "", Form: f}
	var err error
	if !v.New {
		f["id"] = r.PathValue("id")
		if _, err := c.st.Topic(ctx, f["id"]); err != nil {
			c.fail(w, r, nil, err)
			return
		}
	} else if _, gerr := c.st.Topic(ctx, f["id"]); gerr == nil {
		err = &dispatcher.Error{Code: dispatcher.CodeConflict, Field: "id", Message: "a topic has this id already"}
	}
	t := &dispatcher.Topic{ID: f["id"], Name: f["name"], Kind: dispatcher.TopicKind(f["kind"]), Description: f["description"]}
	if err == nil {
		err = c.st.PutTopic(ctx, t)
	}
	if err != nil {
		c.recordPage(w, r, statusOf(err), "topic_form.html", "topics", v, err)
		return
	}
	c.audit(r, "topic.put", t.ID, "")
	http.Redirect(w, r, c.cfg.Path+"/topics", http.StatusSeeOther)
}
