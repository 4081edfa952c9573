package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// The operations server's limits: it serves a scraper and probes, not the
// public.
const (
	opsMaxConns = 64
	// opsWriteTimeout leaves a scrape time to read the queues (5 s at
	// most) and the answer time to be written.
	opsWriteTimeout = 30 * time.Second
)

// listenOps opens the operations listener (MISSIVE_OPS_ADDR) and says its
// address on stdout; nil when it is "off".
func (a *app) listenOps(stdout io.Writer) (net.Listener, error) {
	if a.cfg.OpsAddr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", a.cfg.OpsAddr)
	if err != nil {
		return nil, fmt.Errorf("MISSIVE_OPS_ADDR: %w", err)
	}
	fmt.Fprintf(stdout, "missive: operations on http://%s (/metrics, /healthz, /readyz)\n", ln.Addr())
	return ln, nil
}

// serveOps serves the operations routes on ln until ctx ends, with the
// API server's connection cap and timeouts (serveHTTP).
func (a *app) serveOps(ctx context.Context, ln net.Listener) error {
	return serveHTTP(ctx, ln, a.opsHandler(), httpLimits{
		readTimeout:  min(a.cfg.http.readTimeout, headerTimeout),
		writeTimeout: opsWriteTimeout,
		maxConns:     opsMaxConns,
	})
}

// opsHandler serves the operator's routes, on every role: GET /metrics
// (Prometheus), /healthz (the process answers) and /readyz (Redis
// answers: the check the API's /readyz makes). The public API listener
// has /healthz and /readyz too, never /metrics.
func (a *app) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	a.d.MountHealth(mux)
	return mux
}
