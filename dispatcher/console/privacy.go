package console

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/dispatcher/sequence"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Who sees what of a contact (doc.go says the same):
//
//   - admin: everything held (addresses, attributes, tags, the ledger's
//     evidence), the export, erasure, suppressions added and removed;
//   - marketer: a contact by id or by address lookup, without its
//     personal data: the consents and their ledger (sources and times,
//     evidence hidden), the ledger check and the sends' states; a
//     suppression lookup;
//   - read-only: the same contact page by id, no lookup by address (which
//     would tell whether a person is a contact), no suppressions.
//
// mayLookup and seesPersonal are these rules; the routes' access is the
// rest.
func mayLookup(role string) bool    { return role == RoleAdmin || role == RoleMarketer }
func seesPersonal(role string) bool { return role == RoleAdmin }

// readAddress reads a channel and an address typed in a form and
// normalises the address as the API's suppression routes do. Returns an
// error with code invalid naming channel or address; the message never
// quotes the address.
func readAddress(r *http.Request) (channels.Kind, string, error) {
	k := channels.Kind(strings.TrimSpace(r.PostFormValue("channel")))
	addr := strings.TrimSpace(r.PostFormValue("address"))
	a, err := dispatcher.NormalizeAddressInput(k, addr)
	return k, a, err
}

// suppressionView is the suppression page: the channel last used, what a
// lookup found, the errors by field. The address typed is never sent
// back: the page forgets it.
type suppressionView struct {
	Channel string
	Looked  bool
	Found   *dispatcher.Suppression
	Done    string // "add" or "remove" after a change
	Action  string // the form sent: lookup, add or remove
	Errors  map[string]string
}

// ErrorsOf are the errors of the form of action: the page has three
// forms with the same fields, and an error is shown in the one sent.
func (v suppressionView) ErrorsOf(action string) map[string]string {
	if v.Action != action {
		return nil
	}
	return v.Errors
}

// For is the view of the form of action: its errors only.
func (v suppressionView) For(action string) suppressionView {
	v.Errors = v.ErrorsOf(action)
	return v
}

func (c *Console) suppressionPage(w http.ResponseWriter, r *http.Request, status int, v suppressionView, err error) {
	var pageErr string
	v.Errors, pageErr = fieldErrors(err)
	if v.Channel == "" {
		v.Channel = string(channels.Email)
	}
	c.render(w, r, status, "suppressions.html", "suppressions", v, pageErr)
}

func (c *Console) suppressions(w http.ResponseWriter, r *http.Request) {
	c.suppressionPage(w, r, http.StatusOK, suppressionView{Done: r.URL.Query().Get("done")}, nil)
}

// suppressionAction looks an address up (lookup), adds it (add) or
// removes it (remove) from the suppression list, through the store's
// hashed entries, as the API does.
func (c *Console) suppressionAction(w http.ResponseWriter, r *http.Request) {
	k, addr, err := readAddress(r)
	v := suppressionView{Channel: string(k), Action: r.PathValue("action")}
	if err != nil {
		c.suppressionPage(w, r, statusOf(err), v, err)
		return
	}
	ctx := r.Context()
	switch r.PathValue("action") {
	case "lookup":
		sup, err := c.st.Suppression(ctx, k, addr)
		if err != nil && !errors.Is(err, dispatcher.ErrNotFound) {
			c.suppressionPage(w, r, statusOf(err), v, err)
			return
		}
		v.Looked, v.Found = true, sup
		if err != nil {
			v.Found = nil
		}
		c.suppressionPage(w, r, http.StatusOK, v, nil)
		return
	case "add":
		if userOf(r).user.Role != RoleAdmin {
			c.fail(w, r, nil, &dispatcher.Error{Code: dispatcher.CodeForbidden, Message: "your role does not allow this"})
			return
		}
		var until time.Time
		if s := strings.TrimSpace(r.PostFormValue("until")); s != "" {
			d, err := time.ParseInLocation("2006-01-02", s, c.location(userOf(r).user))
			if err != nil || !d.After(c.d.Config.Now()) {
				err := dispatcher.Invalid("until", "must be a future date (YYYY-MM-DD), or left empty for good")
				c.suppressionPage(w, r, statusOf(err), v, err)
				return
			}
			until = d.UTC()
		}
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		if len(reason) > 32 {
			err := dispatcher.Invalid("reason", "must be at most 32 characters")
			c.suppressionPage(w, r, statusOf(err), v, err)
			return
		}
		if err := c.st.Suppress(ctx, k, addr, reason, until); err != nil {
			c.suppressionPage(w, r, statusOf(err), v, err)
			return
		}
		c.audit(r, "suppression.add", string(k), "")
	case "remove":
		if userOf(r).user.Role != RoleAdmin {
			c.fail(w, r, nil, &dispatcher.Error{Code: dispatcher.CodeForbidden, Message: "your role does not allow this"})
			return
		}
		if err := c.st.Unsuppress(ctx, k, addr); err != nil {
			c.suppressionPage(w, r, statusOf(err), v, err)
			return
		}
		c.audit(r, "suppression.remove", string(k), "")
	default:
		c.fail(w, r, nil, dispatcher.NotFound("action"))
		return
	}
	http.Redirect(w, r, c.cfg.Path+"/suppressions?done="+r.PathValue("action"), http.StatusSeeOther)
}

// contactsView is the contact lookup page.
type contactsView struct {
	Form   map[string]string
	Lookup bool // the user may look contacts up by address
	Errors map[string]string
}

func (c *Console) contactsPage(w http.ResponseWriter, r *http.Request, status int, v contactsView, err error) {
	var pageErr string
	v.Errors, pageErr = fieldErrors(err)
	v.Lookup = mayLookup(userOf(r).user.Role)
	if v.Form == nil {
		v.Form = map[string]string{"channel": string(channels.Email)}
	}
	c.render(w, r, status, "contacts.html", "contacts", v, pageErr)
}

func (c *Console) contacts(w http.ResponseWriter, r *http.Request) {
	c.contactsPage(w, r, http.StatusOK, contactsView{}, nil)
}

// findContact opens a contact by id (op=id) or by one of its addresses.
func (c *Console) findContact(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if id := strings.TrimSpace(r.PostFormValue("id")); r.PostFormValue("op") == "id" {
		f := map[string]string{"id": id, "channel": string(channels.Email)}
		if !dispatcher.ValidID(id) {
			c.contactsPage(w, r, http.StatusUnprocessableEntity, contactsView{Form: f},
				dispatcher.Invalid("id", "must be 1-128 characters of letters, digits and . _ : @ + -"))
			return
		}
		ok, err := c.st.ContactExists(ctx, id)
		if err == nil && !ok {
			err = &dispatcher.Error{Code: dispatcher.CodeNotFound, Field: "id", Message: "names no contact"}
		}
		if err != nil {
			c.contactsPage(w, r, statusOf(err), contactsView{Form: f}, err)
			return
		}
		http.Redirect(w, r, c.cfg.Path+"/contacts/"+id, http.StatusSeeOther)
		return
	}
	if !mayLookup(userOf(r).user.Role) {
		c.fail(w, r, nil, &dispatcher.Error{Code: dispatcher.CodeForbidden, Message: "your role does not allow this"})
		return
	}
	k, addr, err := readAddress(r)
	f := map[string]string{"channel": string(k)}
	if err == nil {
		var id string
		id, err = c.st.ContactIDByAddress(ctx, k, addr)
		if errors.Is(err, dispatcher.ErrNotFound) {
			err = &dispatcher.Error{Code: dispatcher.CodeNotFound, Field: "address", Message: "names no contact"}
		}
		if err == nil {
			http.Redirect(w, r, c.cfg.Path+"/contacts/"+id, http.StatusSeeOther)
			return
		}
	}
	c.contactsPage(w, r, statusOf(err), contactsView{Form: f}, err)
}

// consentRow is a current consent.
type consentRow struct {
	Channel, Topic string
	store.ConsentCurrent
}

// contactView is a contact's page.
type contactView struct {
	Contact  *dispatcher.Contact
	Personal bool // the user sees its personal data
	Admin    bool
	Consents []consentRow
	Ledger   []dispatcher.ConsentEvent
	Check    store.LedgerReport
	Sends    []*dispatcher.Send
	// Enrolments are the contact's ways through sequences, with their
	// next actions; Stop says the user may end one.
	Enrolments []sequence.Progress
	Stop       bool
}

// contactOf reads the contact of the path's id, answering not found as
// the API does for an id that is not one.
func (c *Console) contactOf(r *http.Request) (*dispatcher.Contact, error) {
	id := r.PathValue("id")
	if !dispatcher.ValidID(id) {
		return nil, dispatcher.NotFound("contact")
	}
	ct, err := c.st.Contact(r.Context(), id)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return nil, dispatcher.NotFound("contact")
	}
	return ct, err
}

func (c *Console) contact(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ct, err := c.contactOf(r)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	role := userOf(r).user.Role
	v := contactView{Contact: ct, Personal: seesPersonal(role), Admin: role == RoleAdmin, Stop: role != RoleReadOnly}
	states, err := c.st.ConsentStates(ctx, ct.ID)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	for key, cur := range states {
		ch, topic, _ := strings.Cut(key, "/")
		v.Consents = append(v.Consents, consentRow{Channel: ch, Topic: topic, ConsentCurrent: cur})
	}
	slices.SortFunc(v.Consents, func(a, b consentRow) int {
		return strings.Compare(a.Channel+"/"+a.Topic, b.Channel+"/"+b.Topic)
	})
	if v.Ledger, err = c.st.ConsentLedger(ctx, ct.ID); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if v.Check, err = c.st.VerifyLedger(ctx, ct.ID); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if v.Sends, err = c.st.ContactSends(ctx, ct.ID); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if v.Enrolments, err = c.d.Sequences.Progress(ctx, ct.ID); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if !v.Personal {
		// The page gets a copy without personal data, so that no
		// template can show it by mistake.
		ct := *ct
		ct.Email, ct.Phone, ct.Attributes, ct.Tags = "", "", nil, nil
		v.Contact = &ct
		for i := range v.Ledger {
			v.Ledger[i].Evidence = nil
		}
	}
	c.render(w, r, http.StatusOK, "contact.html", "contacts", v, "")
}

// exportContact downloads the contact's export, the same JSON as GET
// /v1/contacts/{id}/export.
func (c *Console) exportContact(w http.ResponseWriter, r *http.Request) {
	ct, err := c.contactOf(r)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	exp, err := c.d.Privacy.ExportContact(r.Context(), ct.ID)
	if errors.Is(err, dispatcher.ErrNotFound) {
		err = dispatcher.NotFound("contact")
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.audit(r, "contact.export", ct.ID, "")
	w.Header().Set("Content-Disposition", `attachment; filename="contact-export.json"`)
	dispatcher.WriteJSON(w, http.StatusOK, exp)
}

// eraseView is the erasure's confirmation, then its report.
type eraseView struct {
	ID     string
	Errors map[string]string
	Report *privacy.ErasureReport
}

func (c *Console) confirmErase(w http.ResponseWriter, r *http.Request) {
	ct, err := c.contactOf(r)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.render(w, r, http.StatusOK, "erase.html", "contacts", eraseView{ID: ct.ID}, "")
}

// eraseContact erases the contact once the user typed its id to
// confirm: the same Privacy.EraseContact the API's DELETE calls.
func (c *Console) eraseContact(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !dispatcher.ValidID(id) {
		c.fail(w, r, nil, dispatcher.NotFound("contact"))
		return
	}
	if strings.TrimSpace(r.PostFormValue("confirm")) != id {
		err := dispatcher.Invalid("confirm", "type the contact's id to confirm")
		c.render(w, r, statusOf(err), "erase.html", "contacts", eraseView{ID: id, Errors: map[string]string{"confirm": err.Message}}, "")
		return
	}
	rep, err := c.d.Privacy.EraseContact(r.Context(), id)
	if errors.Is(err, dispatcher.ErrNotFound) {
		err = dispatcher.NotFound("contact")
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.audit(r, "contact.erase", id, "")
	c.render(w, r, http.StatusOK, "erase.html", "contacts", eraseView{ID: id, Report: rep}, "")
}
