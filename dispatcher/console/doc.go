// Package console serves the marketer console: server-rendered HTML
// pages, in French and English, where console users sign in, then list,
// create, edit, schedule, start, pause, resume and cancel campaigns and
// watch their runs live. It is an http.Handler mounted at /console/ on
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
// the one catalogue (catalogue.go, French and English), a route in New's
// table with the access it needs, and a line in the menu table
// (console.go) for a screen of its own. The route table's middleware signs the user in, checks
// the role, checks the CSRF token of every POST (every form carries
// {{csrf .}}) and sets the headers: a Content-Security-Policy of 'self'
// only, no framing, no-store. Pages work without JavaScript; the run page
// adds live updates by server-sent events (static/live.js) and reloads
// itself without it.
package console
