// Package app assembles Missive from its parts: the store, the gate, the
// pipeline, feedback, consent, sign-ups, privacy, the scheduler and the
// webhooks, from one Config whose fields say their defaults. cmd/missive
// reads the environment and flags into a Config; tests build the same
// Dispatcher on their own Redis.
//
//	d, err := app.New(app.Config{Redis: rdb, Secret: secret, Channels: chs})
//	go d.Pipeline.RunWorker(ctx)
//	go d.Scheduler.Run(ctx, time.Second)
//	http.ListenAndServe(":8080", api.Handler(d, keys))
package app
