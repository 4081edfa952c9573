// Package outbound tells upstream systems (a CRM, a shop) what happened
// to their contacts: outbound webhooks. Endpoints are registered through
// the API (url, event types, include_address); each gets its own signing
// secret, "whsec_" and the base64 of 32 random bytes, shown once and
// stored sealed with the endpoint under the data keyring.
//
// # Events
//
// The parts where things happen emit dispatcher.Events: the consent
// manager and the API's consent route (consent.changed, unsubscribed),
// feedback (suppressed, bounced, complained, delivered, failed), the send
// path (failed) and sign-ups (signup.confirmed). Webhooks.Emit turns an
// event into one JSON body per subscribed endpoint, {type, timestamp,
// data: {contact, topic, channel, run, send, reason, state}}, with
// data.address only for endpoints registered with include_address, and
// writes them in one pipelined Redis round trip: each body sealed with a
// 7-day TTL, its id appended to the endpoint's queue for the contact, and
// an "endpoint event" pair pushed to an outbox. The list of endpoints is
// read at most every CacheFor (5 s) per process, so emitting costs that
// one round trip; an endpoint registered in another process sees events
// from then on. Emit never fails its caller: an event it cannot write is
// logged without personal data and lost. The write happens after the
// change that causes it, so a crash between the two loses the event.
//
// # Delivery
//
// A worker's loop (pipeline.HandOverWebhooks) reads the outbox every
// 100 ms, enqueues one asynq task per event, its payload the endpoint
// and event ids only, and then takes the events out of the outbox (one
// worker at a time, under a lease): a worker that dies in between leaves
// them to the next hand-over, which enqueues them again under the same
// task ids. The task (Webhooks.Deliver) takes a lease on the
// endpoint's queue for the event's contact and delivers from the head of
// that queue: so a contact's events reach an endpoint one after the
// other, in the order they were emitted, whichever task runs first. A
// failed call (an answer other than 2xx, a timeout, a refused connection)
// leaves the head in place and fails the task, which asynq retries with
// the pipeline's exponential backoff; a later event's task finding the
// queue leased snoozes without counting a failure, and finding it free
// delivers the head first. On its last try an event that still fails is
// dropped and logged "dropped", and the events after it go on. Erasing a
// contact deletes its events waiting for endpoints that receive addresses
// (store.ForgetWebhookEvents).
//
// We chose our own per-(endpoint, contact) queue over asynq's Group and
// Unique options: Group aggregates tasks into one without ordering them
// nor holding back the group while one fails, and Unique only refuses a
// duplicate of the same payload. A Redis list and a lease order the
// events and survive retries.
//
// Each call is signed following Standard Webhooks
// (https://www.standardwebhooks.com): webhook-id (the event id, the same
// on retries and replays), webhook-timestamp, and webhook-signature
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.body". Verify checks
// a call as a receiver does, comparing in constant time. Each attempt is
// logged per endpoint (the last 100: event id, status, latency, error
// class; never a body or a URL), and Replay queues a kept event again.
//
//	w, err := outbound.New(outbound.Config{Store: st})
//	ep, err := w.Register(ctx, outbound.Registration{URL: "https://crm.example.com/hooks", Events: []string{dispatcher.EventUnsubscribed}})
//	w.Emit(ctx, dispatcher.Event{Type: dispatcher.EventUnsubscribed, Contact: "c-1042", Topic: "newsletter"})
//	err = outbound.Verify(ep.Secret, req.Header, body, time.Now(), 5*time.Minute) // on the receiving side
package outbound
