// Package console serves the marketer console: server-rendered HTML
// pages, in French and English, where console users sign in, then list,
// create, edit, schedule, start, pause, resume and cancel campaigns and
// watch their runs live; list sequences with their counts, read one in
// words, pause, resume and edit it (each save a new version, through
// Sequences.Put, optionally moving the running enrolments); edit
// templates (with a live preview), segments and topics; look contacts
// and suppressions up, and see and stop a contact's enrolments; export
// and erase a contact; and read the analytics of a run or a topic. It is an http.Handler mounted at /console/ on
// the API listener, and it does everything through the app's Dispatcher:
// the same Pipeline and Store calls as the JSON API, never rules of its
// own.
//
//	h, err := console.New(console.Config{Dispatcher: d})
//	mux.Handle("/console/", h)
//
// Accounts (Roles: admin, marketer, read-only) live in the store, their
// passwords as argon2id hashes (HashPassword); AddUser, SetPassword and
// RemoveUser serve the "missive users" command and the users page alike.
//
// Adding a screen: a template in templates/ (its "title" and "body",
// framed by layout.html) named in pageNames (render.go), its strings in
// the one catalogue (catalogue.json, French and English), a route in New's
// table with the access it needs, and a line in the menu table
// (console.go) for a screen of its own. The route table's middleware signs the user in, checks
// the role, checks the CSRF token of every POST (every form carries
// {{csrf .}}) and sets the headers: a Content-Security-Policy of 'self'
// only, no framing, no-store. Pages work without JavaScript; the run page
// adds live updates by server-sent events (static/live.js) and reloads
// itself without it; the template editor's Preview button posts the form,
// and static/preview.js posts it as the user types and swaps the preview
// in.
//
// Who sees what of contacts:
//
//   - admin: a contact's personal data (addresses, attributes, tags, the
//     consent ledger's evidence), its export and erasure (erasure asks
//     for the contact's id typed again), template previews with a real
//     contact's data, the counts of segments by attributes or by a list
//     of contacts, suppressions added and removed;
//   - marketer: a contact opened by id or found by address, without its
//     personal data: consents, the ledger's events (sources and times)
//     and its check, the sends' states; suppression lookups; previews and
//     counts by sample data and by tags only;
//   - read-only: the same contact page, opened by id only (a lookup by
//     address would tell whether a person is a contact); no suppressions.
//
// The contact page gets a copy of the contact without its personal data
// for the roles that may not see it, so that no template can show it by
// mistake. An address typed in a lookup is normalised and hashed by the
// store, never logged, stored or written back into the page.
package console
