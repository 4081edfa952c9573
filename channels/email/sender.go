package email

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/missive-dev/missive/channels"
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("email: sender is closed")

// Sender sends email through one SMTP relay over a pool of open connections.
// It is safe for concurrent use.
type Sender struct {
	endpoint Endpoint
	defaults Defaults
	dkim     *DKIM // nil: no signature
	timeout  time.Duration
	log      *slog.Logger
	dials    *dialGate

	pool      chan *conn // idle connections; a conn is used by one goroutine at a time
	size      int
	closed    chan struct{}
	closeOnce sync.Once
}

var _ channels.Channel = (*Sender)(nil)

// New validates cfg, fills its defaults and returns a Sender. It does not
// connect: connections are opened on first use and kept open.
func New(cfg Config) (*Sender, error) {
	ep, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Connections < 0 {
		return nil, errors.New("email: Connections must not be negative")
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("email: Timeout must not be negative")
	}
	if cfg.DialBackoff < 0 || cfg.MaxDialBackoff < 0 {
		return nil, errors.New("email: DialBackoff and MaxDialBackoff must not be negative")
	}
	if cfg.From != "" {
		if _, err := parseAddress(cfg.From, true); err != nil {
			return nil, fmt.Errorf("email: MISSIVE_EMAIL_FROM: %w", err)
		}
	}
	if cfg.ReturnPath != "" {
		if _, err := parseAddress(cfg.ReturnPath, false); err != nil {
			return nil, fmt.Errorf("email: ReturnPath: %w", err)
		}
	}
	var signer *DKIM
	if cfg.DKIM != nil {
		if err := cfg.DKIM.Validate(); err != nil {
			return nil, err
		}
		d := *cfg.DKIM
		signer = &d
	}
	s := &Sender{
		dkim:     signer,
		endpoint: ep,
		defaults: Defaults{From: cfg.From, ReturnPath: cfg.ReturnPath, MessageIDDomain: cfg.MessageIDDomain},
		timeout:  cmp.Or(cfg.Timeout, 30*time.Second),
		log:      cmp.Or(cfg.Logger, slog.Default()),
		size:     cmp.Or(cfg.Connections, 4),
		closed:   make(chan struct{}),
	}
	base := cmp.Or(cfg.DialBackoff, time.Second)
	s.dials = &dialGate{base: base, max: max(base, cmp.Or(cfg.MaxDialBackoff, 30*time.Second)), now: time.Now}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = ep.Host
	}
	s.pool = make(chan *conn, s.size)
	for range s.size {
		c, err := s.newConn(tlsConfig, cfg.HeloName)
		if err != nil {
			return nil, err
		}
		s.pool <- c
	}
	return s, nil
}

// newConn makes one go-mail client. go-mail clients hold one connection and
// must not be shared, so each pooled conn has its own.
func (s *Sender) newConn(tlsConfig *tls.Config, helo string) (*conn, error) {
	c := &conn{}
	policy := mail.TLSOpportunistic
	switch s.endpoint.TLS {
	case TLSRequired:
		policy = mail.TLSMandatory
	case TLSNone:
		policy = mail.NoTLS
	}
	dialer := &net.Dialer{}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		dc := c.attach(raw)
		if s.endpoint.TLS != TLSImplicit {
			return dc, nil
		}
		// smtps is done here rather than with go-mail's WithSSL, whose
		// built-in dialer would bypass the deadline wrapper. go-mail sees a
		// *tls.Conn and treats the session as encrypted.
		tc := tls.Client(dc, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}
	opts := []mail.Option{
		mail.WithPort(s.endpoint.Port),
		mail.WithTimeout(s.timeout),
		mail.WithTLSPolicy(policy),
		mail.WithTLSConfig(tlsConfig),
		mail.WithDialContextFunc(dial),
		// Skip the NOOP before and the RSET after every message: two round
		// trips of six. A connection that died while idle fails at MAIL FROM
		// before anything was sent, and Send then redials once.
		mail.WithoutNoop(),
		mail.WithoutRset(),
	}
	if helo != "" {
		opts = append(opts, mail.WithHELO(helo))
	}
	if s.endpoint.Username != "" {
		opts = append(opts,
			mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(s.endpoint.Username),
			mail.WithPassword(s.endpoint.Password))
	}
	client, err := mail.NewClient(s.endpoint.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("email: %s: %w", urlField, err)
	}
	c.client = client
	return c, nil
}

// Send delivers m to the relay. On success the Result holds the Message-ID.
//
// Errors are *channels.Error: Permanent for an SMTP 5xx reply or a message
// that cannot be built, Temporary for a 4xx reply, a connection failure or a
// cancelled ctx before the data was sent, and Ambiguous when the connection
// failed after the end of the data (the relay may have accepted the message:
// do not resend), Sender when Config.DKIM's key fails to sign. Their text
// never contains an address or the body. Send returns ErrClosed after Close.
//
// While the relay refuses connections the pool backs off
// (Config.DialBackoff): Send then fails fast, Temporary, with RetryIn set
// to when the pool connects again, rather than each send dialling.
//
// With Config.DKIM set, the message carries a DKIM-Signature field over the
// bytes the relay receives.
func (s *Sender) Send(ctx context.Context, m channels.Message) (channels.Result, error) {
	if m.Channel != "" && m.Channel != channels.Email {
		return channels.Result{}, channels.NewError(channels.Permanent, "", fmt.Errorf("email: message is for channel %q", m.Channel))
	}
	msg, err := Build(m, s.defaults)
	if err != nil {
		return channels.Result{}, channels.NewError(channels.Permanent, "", err)
	}
	if s.dkim != nil {
		if err := s.dkim.signMsg(msg); err != nil {
			var se *signError
			if errors.As(err, &se) {
				// The key, not the message, is at fault (a remote signer
				// that fails): no message can go until an operator acts.
				return channels.Result{}, channels.NewError(channels.Sender, "", err)
			}
			return channels.Result{}, channels.NewError(channels.Permanent, "", err)
		}
	}
	result := channels.Result{ProviderID: msg.GetMessageID()}

	var c *conn
	select {
	case c = <-s.pool:
	case <-s.closed:
		return channels.Result{}, ErrClosed
	case <-ctx.Done():
		return channels.Result{}, channels.NewError(channels.Temporary, "", fmt.Errorf("email: waiting for a connection: %w", ctx.Err()))
	}
	defer func() { s.pool <- c }()
	select {
	case <-s.closed:
		return channels.Result{}, ErrClosed
	default:
	}

	for attempt := 0; ; attempt++ {
		reused := c.open
		if !c.open {
			if err := s.dial(ctx, c); err != nil {
				return channels.Result{}, err
			}
		}
		if attempt == 0 {
			// A connection is held and open: the message leaves now.
			if err := m.TakeClaim(ctx); err != nil {
				return channels.Result{}, err
			}
		}
		err := c.send(ctx, msg)
		if err == nil {
			return result, nil
		}
		var se *mail.SendError
		errors.As(err, &se)
		if msg.IsDelivered() {
			// The relay accepted the data; only what came after failed.
			c.drop()
			return result, nil
		}
		if !keepOpen(se) {
			c.drop()
		}
		if attempt == 0 && reused && staleConn(se) && ctx.Err() == nil {
			s.log.DebugContext(ctx, "email: idle connection lost, redialling", "endpoint", s.endpoint)
			c.drop()
			continue
		}
		cerr := classify(ctx, se, err)
		s.log.DebugContext(ctx, "email: send failed", "kind", cerr.Kind, "code", cerr.Code)
		return channels.Result{}, cerr
	}
}

// dial opens c unless the pool is backing off from a relay that refuses
// connections; then, and when the dial fails, it returns a Temporary
// *channels.Error whose RetryIn says when the pool dials again.
func (s *Sender) dial(ctx context.Context, c *conn) error {
	if ok, retryIn := s.dials.acquire(); !ok {
		return &channels.Error{Kind: channels.Temporary, RetryIn: retryIn,
			Err: fmt.Errorf("email: relay unavailable; the pool connects again in %v", retryIn.Round(time.Millisecond))}
	}
	err := c.dial(ctx)
	if err == nil {
		s.dials.succeeded()
		s.log.DebugContext(ctx, "email: connected", "endpoint", s.endpoint)
		return nil
	}
	cerr := classifyDial(ctx, err)
	if ctx.Err() == nil && cerr.Kind == channels.Temporary {
		cerr.RetryIn = s.dials.failed()
	} else {
		// A cancelled dial says nothing of the relay; a refusal of our
		// credentials or TLS settings (Sender) stops the callers anyway,
		// and must keep saying why.
		s.dials.released()
	}
	s.log.DebugContext(ctx, "email: connect failed", "endpoint", s.endpoint, "kind", cerr.Kind, "code", cerr.Code, "retry_in", cerr.RetryIn)
	return cerr
}

// Close closes the connections, waiting for sends in flight. Send returns
// ErrClosed afterwards.
func (s *Sender) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		close(s.closed)
		for range s.size {
			c := <-s.pool
			if err := c.close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// keepOpen reports whether the connection is still usable after err: only
// after a reply to MAIL FROM or RCPT TO, which go-mail follows with RSET.
func keepOpen(se *mail.SendError) bool {
	if se == nil || se.ErrorCode() == 0 || se.ErrorCode() == 421 {
		return false
	}
	return se.Reason == mail.ErrSMTPMailFrom || se.Reason == mail.ErrSMTPRcptTo
}

// staleConn reports whether a reused connection failed before the message
// left: the relay closed it while it sat idle, or the connection went
// silent at MAIL FROM, RCPT TO or the DATA command, before any of the
// message (this process was frozen past the timeout, the relay dropped
// it). Nothing of the message was sent, so a
// fresh connection may carry it at once, rather than the send waiting
// for a retry of a task that may belong to another worker by now.
func staleConn(se *mail.SendError) bool {
	if se == nil || (se.ErrorCode() != 0 && se.ErrorCode() != 421) {
		return false
	}
	switch se.Reason {
	case mail.ErrConnCheck, mail.ErrSMTPMailFrom, mail.ErrSMTPRcptTo, mail.ErrSMTPData:
		return true
	}
	return false
}

// conn is one pooled go-mail client and its connection.
type conn struct {
	client *mail.Client
	open   bool

	mu     sync.Mutex
	raw    *deadlineConn // the current TCP connection
	gen    uint64        // the current Send; a late cancellation of an earlier one is ignored
	cancel bool          // the current Send's ctx is done
}

// attach wraps a new TCP connection; called from the dialer.
func (c *conn) attach(raw net.Conn) net.Conn {
	dc := &deadlineConn{Conn: raw}
	c.mu.Lock()
	c.raw = dc
	if c.cancel {
		dc.interrupt()
	}
	c.mu.Unlock()
	return dc
}

// watch makes ctx's end interrupt the connection's I/O. go-mail only bounds
// I/O with its Timeout, so without this a cancelled Send would block until
// the relay answered.
func (c *conn) watch(ctx context.Context) (stop func() bool) {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.cancel = false
	c.mu.Unlock()
	return context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.gen != gen {
			return
		}
		c.cancel = true
		if c.raw != nil {
			c.raw.interrupt()
		}
	})
}

func (c *conn) dial(ctx context.Context) error {
	stop := c.watch(ctx)
	err := c.client.DialWithContext(ctx)
	if !stop() || err != nil {
		c.drop()
		return cmp.Or(err, ctx.Err())
	}
	c.open = true
	return nil
}

func (c *conn) send(ctx context.Context, msg *mail.Msg) error {
	if err := ctx.Err(); err != nil {
		return &notSent{err}
	}
	stop := c.watch(ctx)
	err := c.client.Send(msg)
	if !stop() {
		// The connection was interrupted, or is about to be.
		c.drop()
	}
	return err
}

// drop closes the connection without QUIT: it is broken or in an unknown state.
func (c *conn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw != nil {
		_ = c.raw.Close()
		c.raw = nil
	}
	c.open = false
}

// close says QUIT and closes the connection.
func (c *conn) close() error {
	var err error
	if c.open {
		err = c.client.Close()
	}
	c.drop()
	if err != nil {
		return fmt.Errorf("email: closing connection: %w", err)
	}
	return nil
}

// notSent is a Send that never reached the wire.
type notSent struct{ err error }

func (e *notSent) Error() string { return e.err.Error() }
func (e *notSent) Unwrap() error { return e.err }

// deadlineConn lets a cancelled context override the deadlines go-mail sets.
type deadlineConn struct {
	net.Conn
	mu          sync.Mutex
	interrupted bool
}

func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.interrupted {
		t = time.Unix(1, 0)
	}
	return d.Conn.SetDeadline(t)
}

func (d *deadlineConn) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.interrupted = true
	_ = d.Conn.SetDeadline(time.Unix(1, 0))
}
