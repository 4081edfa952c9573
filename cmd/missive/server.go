package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/api"
	"github.com/missive-dev/missive/dispatcher/console"
	"github.com/missive-dev/missive/throttle/connlimit"
)

// The HTTP server's fixed limits; the others are settings (httpLimits).
const (
	// headerTimeout bounds reading a request's header (slow headers).
	headerTimeout = 10 * time.Second
	// idleTimeout closes a kept-alive connection that sends nothing more.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes bounds a request's header: no route needs more.
	maxHeaderBytes = 64 << 10
	// drainTimeout is how long a stopping server waits for requests.
	drainTimeout = 10 * time.Second
)

// httpLimits are the HTTP server's settings, parsed by validate.
type httpLimits struct {
	readTimeout    time.Duration
	writeTimeout   time.Duration
	maxConns       int
	trustedProxies []netip.Prefix
	clientIPHeader string
	// consoleIdle and consoleMax end console sessions.
	consoleIdle, consoleMax time.Duration
}

// parseHTTPLimits reads the HTTP server settings. Errors name the
// variable; every setting at fault is in the one error (errors.Join).
func (c *config) parseHTTPLimits() error {
	var err error
	var errs []error
	l := &c.http
	if l.readTimeout, err = parseTimeout("MISSIVE_HTTP_READ_TIMEOUT (--http-read-timeout)", c.HTTPReadTimeout); err != nil {
		errs = append(errs, err)
	}
	if l.writeTimeout, err = parseTimeout("MISSIVE_HTTP_WRITE_TIMEOUT (--http-write-timeout)", c.HTTPWriteTimeout); err != nil {
		errs = append(errs, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(c.HTTPMaxConns))
	if err != nil || n < 1 || n > 1_000_000 {
		errs = append(errs, errors.New("MISSIVE_HTTP_MAX_CONNS (--http-max-conns): want a whole number from 1 to 1000000"))
	}
	l.maxConns = n
	if l.consoleIdle, err = parseSession("MISSIVE_CONSOLE_SESSION_IDLE (--console-session-idle)", c.ConsoleIdle); err != nil {
		return err
	}
	if l.consoleMax, err = parseSession("MISSIVE_CONSOLE_SESSION_MAX (--console-session-max)", c.ConsoleMax); err != nil {
		return err
	}
	if l.consoleIdle > l.consoleMax {
		return errors.New("MISSIVE_CONSOLE_SESSION_IDLE (--console-session-idle): must not exceed MISSIVE_CONSOLE_SESSION_MAX")
	}
	l.trustedProxies = nil
	for i, s := range strings.Split(c.TrustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("MISSIVE_TRUSTED_PROXIES (--trusted-proxies): entry %d: want a CIDR (10.0.0.0/8, fd00::/8) or an address", i+1))
				break
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		l.trustedProxies = append(l.trustedProxies, p.Masked())
	}
	switch h := strings.TrimSpace(c.ClientIPHeader); {
	case strings.EqualFold(h, api.HeaderXForwardedFor):
		l.clientIPHeader = api.HeaderXForwardedFor
	case strings.EqualFold(h, api.HeaderForwarded):
		l.clientIPHeader = api.HeaderForwarded
	default:
		errs = append(errs, errors.New("MISSIVE_CLIENT_IP_HEADER (--client-ip-header): want X-Forwarded-For or Forwarded"))
	}
	return errors.Join(errs...)
}

func parseTimeout(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 || d > time.Hour {
		return 0, fmt.Errorf("%s: want a duration from 1ms to 1h, like 30s", name)
	}
	return d, nil
}

// parseSession reads a console session lifetime: 1 minute to 30 days.
func parseSession(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < time.Minute || d > 30*24*time.Hour {
		return 0, fmt.Errorf("%s: want a duration from 1m to 720h, like 30m", name)
	}
	return d, nil
}

// apiHandler is the HTTP API with the configured proxies, and the
// marketer console under /console/.
func (a *app) apiHandler(keys []api.APIKey) http.Handler {
	l := a.cfg.http
	h := api.New(a.d, api.Config{Keys: keys, TrustedProxies: l.trustedProxies, ClientIPHeader: l.clientIPHeader})
	con, err := console.New(console.Config{Dispatcher: a.d, SessionIdle: l.consoleIdle, SessionMax: l.consoleMax,
		ClientAddr: func(r *http.Request) netip.Addr { return api.ClientAddr(r, l.trustedProxies, l.clientIPHeader) }})
	if err != nil {
		// Only a wiring error: the settings were validated.
		panic(err)
	}
	// A prefix test rather than a ServeMux in front: the API keeps
	// answering every other path itself, as it did alone.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/console/"):
			con.ServeHTTP(w, r)
		case r.URL.Path == "/console":
			http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// serveHTTP serves h on ln within limits until ctx ends, then drains
// connections for up to drainTimeout.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, l httpLimits) error {
	srv := &http.Server{
		Handler: h,
		// A request's header, then its whole body, must arrive in time:
		// a body that never comes no longer holds its connection.
		ReadHeaderTimeout: min(headerTimeout, l.readTimeout),
		ReadTimeout:       l.readTimeout,
		WriteTimeout:      l.writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(connlimit.New(ln, l.maxConns, busyResponse)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

// busyResponse is the whole answer to a connection past the cap
// (MISSIVE_HTTP_MAX_CONNS): a 503 that clients and proxies see, with
// Retry-After.
var busyResponse = func() string {
	body, _ := json.Marshal(map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeUnavailable,
		Message: "too many connections; retry after the Retry-After delay"}})
	return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body)
}()
