// Package metrics defines Missive's Prometheus metrics, on a registry of
// each Metrics' own (never the global default one: tests build several
// Missives in one process), with the Go and process collectors beside
// them. The parts that do the work record into it: the pipeline (gate
// decisions, sends settled, provider calls and errors, rate-limit waits,
// the queues), feedback (provider reports), the scheduler (leadership)
// and the store (Redis errors, through a hook where it dials).
//
// Every method is safe on a nil *Metrics, which records nothing: a part
// built without metrics needs no check. Label values come from small
// closed sets, checked here: a value outside its set is recorded as
// "other", so that no address, number, token or id can ever become a
// label, whatever a caller passes.
//
//	m := metrics.New()
//	p, err := pipeline.New(pipeline.Config{..., Metrics: m})
//	http.Handle("GET /metrics", m.Handler())
package metrics
