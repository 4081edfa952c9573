package api

import (
	"net/http"

	"github.com/missive-dev/missive/dispatcher"
)

// Erasure (GDPR Art. 17) and access/portability (Art. 15, 20) of one
// contact. Both find the contact's sends by their ids: a campaign send's
// id derives from run, contact and channel, so every run of every campaign
// gives the candidates (the gate writes no index: it would cost the hot
// path two commands a recipient); API sends, whose ids derive from their
// idempotency key, are in a per-contact index:
//
//	P:c:{id}:sends   set of the contact's API send ids, expiring with the
//	                 newest of them (the send retention)
//
// What erasure keeps, and why:
//
//   - Suppression entries of the contact's addresses. They are keyed by a
//     keyed hash of the address and hold no address; they are the way to
//     honour an opt-out, a complaint or a bounce if the same address comes
//     back (a re-import, a sign-up). The CNIL asks that opposition lists be
//     kept at least 3 years, as hashes.
//   - The consent ledger, rewritten as pseudonymous: channel, topic, state,
//     source and time of each event stay, as the proof that consent was
//     given or withdrawn (Art. 7(1)); evidence values that could point back
//     to the person (IP hash, user agent, message and send ids) are
//     dropped, and only the ones that describe how consent was collected
//     (form, wording, page, confirmation channel) stay.
//   - Sends being handed to a provider at that very moment: their outcome
//     settles the run's counters; the records expire with the retention.

// --- HTTP

func (a *handler) eraseContact(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	rep, err := a.d.Privacy.EraseContact(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

func (a *handler) exportContact(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	exp, err := a.d.Privacy.ExportContact(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, exp, nil
}
