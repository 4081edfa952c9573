// Package apptest holds what the tests of the packages that serve a
// Dispatcher (the API, the console) build it with: its configuration on a
// test Redis, its worker, the template their campaigns send. The caller
// picks the channels: this package names no concrete one.
package apptest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// Secret is the secret of the test Dispatchers.
const Secret = "test-secret-test-secret-test-secret!"

// Config returns the configuration of a test Dispatcher on r (its own key
// prefix, so that tests run in parallel) with publicURL and chans: no
// quiet hours, the reconciler every 200 ms, concurrency send workers, and
// every log line, debug included, written to logs.
func Config(r *redistest.Redis, publicURL string, chans map[channels.Kind]channels.Channel, concurrency int, logs io.Writer) app.Config {
	return app.Config{
		Redis:     r.Client,
		Prefix:    r.Prefix,
		Secret:    []byte(Secret),
		PublicURL: publicURL,
		Channels:  chans,
		Quiet:     map[channels.Kind]throttle.Calendar{},
		Tuning:    pipeline.Tuning{ReconcileEvery: 200 * time.Millisecond, Concurrency: concurrency},
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// StartWorker runs d's worker until stop is called or the test ends; stop
// (once, whoever calls it) fails t if the worker returned an error.
func StartWorker(t testing.TB, d *app.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Pipeline.RunWorker(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// NewsMail returns the email template "news-mail": a subject, HTML and
// text that greet the contact by first_name, "friend" without one.
func NewsMail() *templates.Template {
	return &templates.Template{ID: "news-mail", Email: &templates.Email{
		Subject: "Hello {{default \"friend\" .Attr.first_name}}",
		HTML:    "<p>Hi {{default \"friend\" .Attr.first_name}}, news!</p>",
		Text:    "Hi {{default \"friend\" .Attr.first_name}}, news!",
	}}
}
