package email

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/missive-dev/missive/channels"
)

// ErrClosed is returned by Send, and by SendBatch for each message, after
// Close.
var ErrClosed = errors.New("email: sender is closed")

// Sender sends email through one SMTP relay over a pool of open
// connections: Send delivers one message, SendBatch several over one
// connection. Where the relay offers PIPELINING (RFC 2920), a message
// costs one round trip in a batch and two alone, instead of four.
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

	// roundTrips counts the times a connection read after writing: what
	// pipelining saves, seen by the tests.
	roundTrips atomic.Int64
}

var (
	_ channels.Channel      = (*Sender)(nil)
	_ channels.BatchChannel = (*Sender)(nil)
)

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
		size:     cmp.Or(cfg.Connections, 8),
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
	c := &conn{timeout: s.timeout, roundTrips: &s.roundTrips}
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
	// go-mail dials, says EHLO, STARTTLS and AUTH, and QUIT; the mail
	// transactions are ours (smtp.go).
	opts := []mail.Option{
		mail.WithPort(s.endpoint.Port),
		mail.WithTimeout(s.timeout),
		mail.WithTLSPolicy(policy),
		mail.WithTLSConfig(tlsConfig),
		mail.WithDialContextFunc(dial),
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

// Send delivers m to the relay, calling m.TakeClaim once it holds an open
// connection, right before the message leaves; a claim that fails comes
// back unchanged and nothing is sent. On success the Result holds the
// Message-ID.
//
// Errors are *channels.Error: Permanent for an SMTP 5xx reply or a message
// that cannot be built, Temporary for a 4xx reply, a connection failure or a
// cancelled ctx before the data was sent, and Ambiguous when the connection
// failed after the end of the data (the relay may have accepted the message:
// do not resend), Sender when the relay refuses the envelope sender (5xx to
// MAIL FROM) or its credentials, or Config.DKIM's key fails to sign. Their
// text never contains an address or the body. Send returns ErrClosed after
// Close.
//
// While the relay refuses connections the pool backs off
// (Config.DialBackoff): Send then fails fast, Temporary, with RetryIn set
// to when the pool connects again, rather than each send dialling.
//
// With Config.DKIM set, the message carries a DKIM-Signature field over the
// bytes the relay receives.
//
// Send is a batch of one: see SendBatch.
func (s *Sender) Send(ctx context.Context, m channels.Message) (channels.Result, error) {
	b := channels.Batch{
		Messages: []channels.Message{m},
		Claim:    func(ctx context.Context, _ []int) []error { return []error{m.TakeClaim(ctx)} },
	}
	out := s.SendBatch(ctx, b)[0]
	return out.Result, out.Err
}

// SendBatch delivers b's messages over one connection of the pool, in
// order, and returns one Outcome each, in order: on success the Result
// holds the Message-ID, else Err is as Send's.
//
// It builds every message first: one that cannot be built gets its
// Permanent (or, for a DKIM key that fails, Sender) error and is not
// claimed. Then it takes a connection, dialling when needed (with Send's
// back-off), and calls b.Claim once with the indexes of the others, in
// order; it does not when ctx is done by then. A message whose claim
// fails gets the claim's error unchanged and is not sent; when b.Claim is
// nil, every message is claimed.
//
// Where the relay offers PIPELINING, the data of one message, its end and
// the MAIL FROM, RCPT TO and DATA of the next leave in one write; without
// it each command waits for its reply. A message refused (a recipient, its
// data) gets its error and the batch goes on. When the relay refuses an
// envelope sender (MAIL FROM), the messages after it are not sent and get
// the same error. When the connection fails or the relay closes it (421),
// the message whose data had ended gets Ambiguous, and those after it,
// which never left, go over a new connection once at least one message
// was done with on this one (else Temporary). When ctx ends, the
// messages whose data had not started get Temporary. A connection from the
// pool that turns out dead before any data of the batch left is redialled
// once, as for Send.
func (s *Sender) SendBatch(ctx context.Context, b channels.Batch) []channels.Outcome {
	out := make([]channels.Outcome, len(b.Messages))
	jobs := make([]*job, 0, len(b.Messages))
	for i, m := range b.Messages {
		j, err := s.prepare(ctx, m)
		if err != nil {
			out[i].Err = err
			continue
		}
		j.index, j.out = i, &out[i]
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return out
	}

	var c *conn
	select {
	case c = <-s.pool:
	case <-s.closed:
		failAll(jobs, ErrClosed)
		return out
	case <-ctx.Done():
		failAll(jobs, channels.NewError(channels.Temporary, "", fmt.Errorf("email: waiting for a connection: %w", ctx.Err())))
		return out
	}
	defer func() { s.pool <- c }()
	select {
	case <-s.closed:
		failAll(jobs, ErrClosed)
		return out
	default:
	}
	s.deliver(ctx, c, b.Claim, jobs)
	for _, j := range jobs {
		if j.err != nil {
			s.log.DebugContext(ctx, "email: send failed", "kind", j.err.Kind, "code", j.err.Code)
		}
	}
	return out
}

// prepare builds m, signs it and reads its envelope.
func (s *Sender) prepare(ctx context.Context, m channels.Message) (*job, error) {
	if m.Channel != "" && m.Channel != channels.Email {
		return nil, channels.NewError(channels.Permanent, "", fmt.Errorf("email: message is for channel %q", m.Channel))
	}
	msg, err := Build(m, s.defaults)
	if err != nil {
		return nil, channels.NewError(channels.Permanent, "", err)
	}
	if s.dkim != nil {
		if err := s.dkim.signMsg(msg); err != nil {
			var se *signError
			if errors.As(err, &se) {
				// The key, not the message, is at fault (a remote signer
				// that fails): no message can go until an operator acts.
				return nil, channels.NewError(channels.Sender, "", err)
			}
			return nil, channels.NewError(channels.Permanent, "", err)
		}
	}
	return newJob(ctx, msg)
}

// deliver claims jobs and sends them over c, dialling it when needed.
func (s *Sender) deliver(ctx context.Context, c *conn, claim func(context.Context, []int) []error, jobs []*job) {
	for attempt := 0; ; attempt++ {
		reused := c.sc != nil
		if !reused {
			if err := s.dial(ctx, c); err != nil {
				failAll(jobs, err)
				return
			}
		}
		if attempt == 0 {
			// A connection is held and open: the messages leave now.
			if jobs = takeClaims(ctx, claim, jobs); len(jobs) == 0 {
				return
			}
		}
		x := c.transactions(ctx)
		err := x.run(jobs)
		if x.stop() || err != nil {
			c.drop()
		}
		if attempt == 0 && reused && x.stale(err) && ctx.Err() == nil {
			// A connection that died while idle: nothing of the batch
			// went out, so a fresh connection may carry it at once,
			// rather than the messages waiting for a retry of a task
			// that may belong to another worker by now.
			s.log.DebugContext(ctx, "email: idle connection lost, redialling", "endpoint", s.endpoint)
			for _, j := range jobs {
				j.reset()
			}
			continue
		}
		x.finish(jobs)
		var rest []*job
		for _, j := range jobs {
			if j.again {
				rest = append(rest, j)
			}
		}
		if len(rest) == 0 || len(rest) == len(jobs) {
			return
		}
		// The connection failed once some messages were done with: the
		// rest, of which nothing left, go over a new one.
		s.log.DebugContext(ctx, "email: connection lost mid-batch, redialling", "endpoint", s.endpoint, "left", len(rest))
		for _, j := range rest {
			j.reset()
		}
		jobs = rest
	}
}

// takeClaims claims jobs through claim and returns those claimed; the
// others get the claim's error. With ctx done nothing is claimed.
func takeClaims(ctx context.Context, claim func(context.Context, []int) []error, jobs []*job) []*job {
	if ctx.Err() != nil {
		for _, j := range jobs {
			j.out.Err = notSent(ctx)
		}
		return nil
	}
	if claim == nil {
		return jobs
	}
	idx := make([]int, len(jobs))
	for k, j := range jobs {
		idx[k] = j.index
	}
	errs := claim(ctx, idx)
	claimed := make([]*job, 0, len(jobs))
	for k, j := range jobs {
		err := errMissingClaim
		if k < len(errs) {
			err = errs[k]
		}
		if err != nil {
			j.out.Err = err
			continue
		}
		claimed = append(claimed, j)
	}
	return claimed
}

// errMissingClaim stands for the answer a Batch.Claim left out: a message
// is sent only when its claim says so.
var errMissingClaim = errors.New("email: the batch's claim gave no answer for this message")

// failAll gives err to every job, each its own copy of a *channels.Error.
func failAll(jobs []*job, err error) {
	var ce *channels.Error
	for _, j := range jobs {
		j.out.Err = err
		if errors.As(err, &ce) && error(ce) == err {
			cp := *ce
			j.out.Err = &cp
		}
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

// conn is one pooled go-mail client and its connection.
type conn struct {
	client     *mail.Client // dials: EHLO, STARTTLS, AUTH
	timeout    time.Duration
	roundTrips *atomic.Int64

	sc *smtp.Client // the open session, nil when closed
	// rset: a refused transaction may still be open; RSET goes before the
	// next MAIL FROM. Nothing is reset after a message that went.
	rset bool
	bw   *bufio.Writer // the transactions' commands and data, see wire

	mu     sync.Mutex
	raw    *deadlineConn // the current TCP connection
	gen    uint64        // the current exchange; a late cancellation of an earlier one is ignored
	cancel bool          // the current exchange's ctx is done
}

// attach wraps a new TCP connection; called from the dialer.
func (c *conn) attach(raw net.Conn) net.Conn {
	dc := &deadlineConn{Conn: raw, roundTrips: c.roundTrips}
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
	sc, err := c.client.DialToSMTPClientWithContext(ctx)
	if !stop() || err != nil {
		c.drop()
		return cmp.Or(err, ctx.Err())
	}
	c.sc = sc
	return nil
}

// drop closes the connection without QUIT: it is broken or in an unknown state.
func (c *conn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw != nil {
		_ = c.raw.Close()
		c.raw = nil
	}
	c.sc, c.rset = nil, false
}

// close says QUIT and closes the connection.
func (c *conn) close() error {
	var err error
	if c.sc != nil {
		// The deadline of the last exchange may have passed while idle.
		if err = c.sc.UpdateDeadline(c.timeout); err == nil {
			err = c.client.CloseWithSMTPClient(c.sc)
		}
	}
	c.drop()
	if err != nil {
		return fmt.Errorf("email: closing connection: %w", err)
	}
	return nil
}

// deadlineConn lets a cancelled context override the deadlines go-mail
// sets, and counts round trips: reads that follow a write.
type deadlineConn struct {
	net.Conn
	mu          sync.Mutex
	interrupted bool

	// Read and Write are called by the goroutine that holds the conn.
	wrote      bool
	roundTrips *atomic.Int64
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.wrote {
		d.wrote = false
		d.roundTrips.Add(1)
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.wrote = true
	return d.Conn.Write(p)
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
