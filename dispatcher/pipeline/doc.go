// Package pipeline moves campaigns from a plan to delivered messages, and
// is the only package that uses asynq. A run's plan task walks the
// segment and enqueues batch tasks; a batch task passes its contacts
// through the gate, records one send per contact and channel, and
// enqueues send tasks that carry ids only; a send task takes the
// provider's rate, renders, and hands each send to its channel, which
// claims it right before the bytes go out (a connection held). The claim
// reads, at its instant, the run's state, the contact's existence,
// suppression and consent: a pause, an erasure or an opt-out recorded
// before it wins, however long the send waited, and a worker that dies
// waiting for a connection leaves nothing claimed. That one send path serves
// campaign sends, API sends and sign-up confirmations alike, with one
// policy for outcomes: a temporary failure retries, a permanent one
// feeds feedback, and an ambiguous one (the provider may have taken it)
// is never sent again. The reconciler requeues sends stuck past their
// deadline and settles those whose worker died mid-send. Campaign and run
// states (start, pause, resume, cancel, complete) live here too, and the
// delivery tasks of outbound webhooks (TypeWebhook, see package outbound),
// which a worker's loop enqueues from the events' outbox.
//
//	p, err := pipeline.New(pipeline.Config{Store: st, Gate: g, Caps: caps, Limiter: lim, Signer: signer, Feedback: fb})
//	run, err := p.StartRun(ctx, "spring-sale", time.Now())
//	err = p.RunWorker(ctx)
package pipeline
