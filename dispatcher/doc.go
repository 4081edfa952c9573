// Package dispatcher is Missive's domain vocabulary, with no I/O: contacts
// and their addresses, topics, consent events and states, suppressions,
// segments and their predicates, campaigns with their schedules and
// states, runs, sends with their states and deterministic ids, and the
// Error type with its stable codes (and WriteError, the one writer of an
// error as an HTTP answer).
//
// Its subpackages each do one job: store (Redis), gate, consent,
// pipeline (asynq), feedback, signup, privacy, schedule, webhook, page,
// api, and app, which assembles them.
//
//	c := &dispatcher.Contact{ID: "c-42", Email: "Ana@Example.com"}
//	if err := c.Normalize("Europe/Paris"); err != nil { ... }
//	id := dispatcher.SendID("run-1", c.ID, channels.Email) // the same on every retry
package dispatcher
