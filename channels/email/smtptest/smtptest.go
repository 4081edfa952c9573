// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on
// 127.0.0.1 for tests: it records what it receives, counts connections, and
// can require AUTH PLAIN, offer STARTTLS or speak implicit TLS with a
// self-signed certificate, leave PIPELINING out, reject given senders and
// recipients and drop the connection after the data of a given recipient;
// for fault tests it can answer 421 at connect (an outage) or after a
// number of messages, 451 at random, never answer after the data, or stop
// reading in the middle of it. As Postfix does, it refuses a MAIL FROM
// while a transaction is open (503 5.5.1): a client must RSET after a
// refused recipient.
//
//	srv := smtptest.New(t, smtptest.WithStartTLS(), smtptest.WithAuth("u", "p"))
//	sender, _ := email.New(email.Config{URL: srv.URL(), TLSConfig: srv.ClientTLSConfig()})
//	...
//	got := srv.Wait(1, 5*time.Second)
//
// Start runs the same server outside a test (missive bench); its caller
// closes it.
package smtptest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message the server accepted.
type Received struct {
	From     string    // MAIL FROM
	BodyType string    // MAIL FROM's BODY= parameter ("8BITMIME"), if any
	UTF8     bool      // MAIL FROM had the SMTPUTF8 parameter
	To       []string  // RCPT TO
	Data     []byte    // the message as received (CRLF line ends)
	TLS      bool      // the session was encrypted
	User     string    // the authenticated user, if any
	At       time.Time // when the server accepted the data
	Size     int       // bytes of data, kept WithoutData too
}

// Option configures a Server.
type Option func(*Server)

// WithAuth makes the server offer AUTH PLAIN and require it before MAIL FROM.
// A wrong password gets 535 5.7.8.
func WithAuth(user, pass string) Option {
	return func(s *Server) { s.user, s.pass = user, pass }
}

// WithStartTLS makes the server offer STARTTLS with a self-signed
// certificate; URL then asks for ?tls=required.
func WithStartTLS() Option {
	return func(s *Server) { s.startTLS = true }
}

// WithImplicitTLS makes the server speak TLS from the first byte (smtps).
func WithImplicitTLS() Option {
	return func(s *Server) { s.implicitTLS = true }
}

// WithoutData makes the server keep each message's envelope, time and
// size but not its data, so that a large run does not weigh on the
// memory of the process it measures.
func WithoutData() Option {
	return func(s *Server) { s.noData = true }
}

// WithoutPipelining leaves PIPELINING (RFC 2920) out of the EHLO reply,
// as a relay that does not offer it, so that clients send a command and
// wait for its reply. go-smtp always offers it: the line is taken out of
// what the server writes, which it can only do without TLS; Start fails
// when WithStartTLS or WithImplicitTLS is given too.
func WithoutPipelining() Option {
	return func(s *Server) { s.noPipelining = true }
}

// WithSMTPUTF8 makes the server offer SMTPUTF8 (RFC 6531).
func WithSMTPUTF8() Option {
	return func(s *Server) { s.utf8 = true }
}

// WithReadTimeout sets how long the server waits for a client's next
// command or data before it closes the connection. Default 30 s.
func WithReadTimeout(d time.Duration) Option {
	return func(s *Server) { s.readTimeout = d }
}

// Server is a running SMTP server, closed when the test ends (New) or by
// its caller (Start).
type Server struct {
	tb          testing.TB // nil when started with Start
	user, pass  string
	startTLS    bool
	implicitTLS bool
	readTimeout time.Duration
	noData      bool

	noPipelining bool
	utf8         bool

	srv    *smtp.Server
	ln     net.Listener
	addr   string
	roots  *x509.CertPool
	served chan struct{}
	// changed is signalled on each new message and each session that
	// gets stuck (HangAfterData, StallData).
	changed chan struct{}

	mu       sync.Mutex
	messages []Received
	conns    int
	open     map[net.Conn]struct{}
	reject   map[string]*smtp.SMTPError
	sender   *smtp.SMTPError            // answer to every MAIL FROM, when set
	from     map[string]*smtp.SMTPError // answer to MAIL FROM of a given sender
	drop     map[string]bool
	hang     map[string]bool
	stall    map[string]bool
	stuck    int     // sessions held by hang or stall
	closeAt  int     // messages a connection accepts before 421; 0: no limit
	down     bool    // answer 421 at connect
	refused  int     // connections answered 421 at connect
	flaky    float64 // share of RCPT TO answered 451
	rnd      *mrand.Rand
	hung     chan struct{}
}

// New starts a server on 127.0.0.1 and registers its Close with tb.Cleanup.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Start(opts...)
	if err != nil {
		tb.Fatalf("smtptest: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.Close)
	return s
}

// Start starts a server on 127.0.0.1; the caller closes it.
func Start(opts ...Option) (*Server, error) {
	s := &Server{
		served:  make(chan struct{}),
		changed: make(chan struct{}, 1),
		reject:  map[string]*smtp.SMTPError{},
		from:    map[string]*smtp.SMTPError{},
		drop:    map[string]bool{},
		hang:    map[string]bool{},
		stall:   map[string]bool{},
		open:    map[net.Conn]struct{}{},
		rnd:     mrand.New(mrand.NewPCG(1, 2)),
		hung:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.noPipelining && (s.startTLS || s.implicitTLS) {
		return nil, errors.New("WithoutPipelining works without TLS only")
	}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "smtptest.local"
	s.srv.ReadTimeout = cmp.Or(s.readTimeout, 30*time.Second)
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.EnableSMTPUTF8 = s.utf8

	var tlsConfig *tls.Config
	if s.startTLS || s.implicitTLS {
		cert, roots, err := selfSigned()
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		s.roots = roots
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if s.startTLS {
		s.srv.TLSConfig = tlsConfig
	}
	if s.user != "" && !s.startTLS && !s.implicitTLS {
		s.srv.AllowInsecureAuth = true
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.ln = &countingListener{Listener: ln, s: s}
	if s.implicitTLS {
		s.ln = tls.NewListener(s.ln, tlsConfig)
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(s.ln)
	}()
	return s, nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.hung:
	default:
		close(s.hung)
	}
	s.mu.Unlock()
	if err := s.srv.Close(); errors.Is(err, smtp.ErrServerClosed) {
		return
	}
	// Serve may not have registered the listener yet when the test is quick.
	_ = s.ln.Close()
	<-s.served
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// URL is a relay URL for the server: smtps:// with WithImplicitTLS, else
// smtp:// with ?tls=required when STARTTLS is offered and ?tls=none when
// not; it carries the credentials given to WithAuth.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	switch {
	case s.implicitTLS:
		u.Scheme = "smtps"
	case s.startTLS:
		u.RawQuery = "tls=required"
	default:
		u.RawQuery = "tls=none"
	}
	if s.user != "" {
		u.User = url.UserPassword(s.user, s.pass)
	}
	return u.String()
}

// ClientTLSConfig trusts the server's certificate; nil without TLS.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.messages))
	for i, m := range s.messages {
		m.To = append([]string(nil), m.To...)
		m.Data = bytes.Clone(m.Data)
		out[i] = m
	}
	return out
}

// Connections is the number of connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Reject makes RCPT TO:<rcpt> fail with the given reply, for example
// RejectSender answers every MAIL FROM with code (a relay refusing the
// sender); a code of 0 undoes it.
func (s *Server) RejectSender(code int, enhanced, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		s.sender = nil
		return
	}
	s.sender = smtpError(code, enhanced, msg)
}

// RejectFrom makes MAIL FROM:<from> fail with the given reply, for
// example (addr, 550, "5.7.1", "sender not allowed"); a code of 0 undoes
// it.
func (s *Server) RejectFrom(from string, code int, enhanced, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.from, strings.ToLower(from))
		return
	}
	s.from[strings.ToLower(from)] = smtpError(code, enhanced, msg)
}

// CloseAfter makes each connection, once it has accepted n messages,
// answer the next MAIL FROM with "421 4.3.2 Service shutting down" and
// close, as a relay that restarts or limits its sessions does; 0 undoes
// it.
func (s *Server) CloseAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeAt = n
}

// Accept undoes Reject for rcpt.
func (s *Server) Accept(rcpt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reject, strings.ToLower(rcpt))
}

// Reject(addr, 550, "5.1.1", "mailbox unknown") or (addr, 451, "4.7.1", ...).
func (s *Server) Reject(rcpt string, code int, enhanced string, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject[strings.ToLower(rcpt)] = smtpError(code, enhanced, msg)
}

func smtpError(code int, enhanced, msg string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: msg}
	if parts := strings.Split(enhanced, "."); len(parts) == 3 {
		for i, p := range parts {
			e.EnhancedCode[i], _ = strconv.Atoi(p)
		}
	}
	return e
}

// DropAfterData makes the server read the whole message for rcpt, then
// close the connection instead of replying: the client cannot know whether
// the message was accepted. The message is not recorded.
func (s *Server) DropAfterData(rcpt string) {
	s.mark(s.drop, rcpt)
}

// mark adds rcpt to set, one of the recipient sets the sessions read.
func (s *Server) mark(set map[string]bool, rcpt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set[strings.ToLower(rcpt)] = true
}

// Unavailable(true) makes the server answer every new connection with
// "421 4.3.2 Service not available" and close it, as a relay in an outage
// or restarting does; connections already open are left alone (close them
// with CloseConnections). Unavailable(false) ends the outage.
func (s *Server) Unavailable(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Refused is the number of connections answered 421 at connect.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// FailRandomly makes the server answer a share p (0 to 1) of RCPT TO
// commands with "451 4.3.0 try again later", from a fixed random sequence;
// 0 undoes it.
func (s *Server) FailRandomly(p float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flaky = p
}

// HangAfterData makes the server read the whole message for rcpt, then
// never answer, until the client gives up or the server closes: the client
// cannot know whether the message was accepted. The message is not
// recorded.
func (s *Server) HangAfterData(rcpt string) {
	s.mark(s.hang, rcpt)
}

// StallData makes the server read the first 64 KiB of the data for rcpt,
// then stop reading until it closes: a client that writes a larger
// message blocks once the socket buffers are full, with the end of its
// data never sent. Connections accepted afterwards get a receive buffer of
// 16 KiB, so that only the client's send buffer holds what the server
// does not read. The message is not recorded.
func (s *Server) StallData(rcpt string) {
	s.mark(s.stall, rcpt)
}

// Stuck is the number of sessions held by HangAfterData or StallData.
func (s *Server) Stuck() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stuck
}

// WaitStuck waits until at least n sessions are held by HangAfterData or
// StallData; it fails the test after timeout.
func (s *Server) WaitStuck(n int, timeout time.Duration) {
	s.tb.Helper()
	if err := s.await(context.Background(), timeout, func() (bool, string) {
		got := s.Stuck()
		return got >= n, fmt.Sprintf("%d sessions stuck, want %d", got, n)
	}); err != nil {
		s.tb.Fatalf("smtptest: %v", err)
	}
}

// Wait waits until at least n messages were accepted and returns them; it
// fails the test after timeout. A server from Start has no test: use Await.
func (s *Server) Wait(n int, timeout time.Duration) []Received {
	s.tb.Helper()
	msgs, err := s.Await(context.Background(), n, timeout)
	if err != nil {
		s.tb.Fatalf("smtptest: %v", err)
	}
	return msgs
}

// Await waits until at least n messages were accepted and returns them.
// It returns an error saying how many arrived when timeout passes or ctx
// ends first.
func (s *Server) Await(ctx context.Context, n int, timeout time.Duration) ([]Received, error) {
	err := s.await(ctx, timeout, func() (bool, string) {
		got := s.Len()
		return got >= n, fmt.Sprintf("got %d messages, want %d", got, n)
	})
	if err != nil {
		return nil, err
	}
	return s.Messages(), nil
}

// await waits until done says so, and returns an error with its text
// when timeout passes or ctx ends first.
func (s *Server) await(ctx context.Context, timeout time.Duration, done func() (bool, string)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ok, state := done()
		if ok {
			return nil
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			return fmt.Errorf("%s after %v", state, timeout)
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", state, ctx.Err())
		}
	}
}

// notify wakes await.
func (s *Server) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Len is the number of messages accepted so far.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns++
	down := l.s.down
	if tcp, ok := c.(*net.TCPConn); ok && len(l.s.stall) > 0 {
		_ = tcp.SetReadBuffer(16 << 10)
	}
	if down {
		l.s.refused++
	} else {
		l.s.open[tc] = struct{}{}
	}
	l.s.mu.Unlock()
	if down {
		// Answered by hand, before go-smtp's greeting: the session never
		// starts. Accept must not block on a slow client, hence the
		// goroutine.
		go func() {
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "421 4.3.2 Service not available, closing transmission channel\r\n")
			_ = c.Close()
		}()
		return l.Accept()
	}
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s *Server
}

// pipelining is the line of the EHLO reply that WithoutPipelining takes
// out. go-smtp writes each line of a reply with one Write.
var pipelining = []byte("250-PIPELINING\r\n")

func (c *trackedConn) Write(p []byte) (int, error) {
	if !c.s.noPipelining || !bytes.Contains(p, pipelining) {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(bytes.Replace(p, pipelining, nil, 1)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.open, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// CloseConnections closes every open connection without a reply, as a
// relay does with idle clients.
func (s *Server) CloseConnections() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.open))
	for c := range s.open {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s        *Server
	conn     *smtp.Conn
	user     string
	from     string
	opts     smtp.MailOptions
	to       []string
	accepted int // messages accepted on this connection
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.user == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != ss.s.user || pass != ss.s.pass {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}), nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.user != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	if ss.from != "" {
		// As Postfix: go-smtp would start another transaction, and hide
		// a client that does not RSET after a refused recipient.
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Error: nested MAIL command"}
	}
	ss.s.mu.Lock()
	e := ss.s.sender
	if e == nil {
		e = ss.s.from[strings.ToLower(from)]
	}
	closing := ss.s.closeAt > 0 && ss.accepted >= ss.s.closeAt
	ss.s.mu.Unlock()
	if closing {
		// Answered by hand: go-smtp keeps a connection open after any
		// reply. Its replies are flushed line by line, so nothing of
		// its own is pending.
		c := ss.conn.Conn()
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "421 4.3.2 Service shutting down, closing transmission channel\r\n")
		_ = c.Close()
		return errors.New("connection closed")
	}
	if e != nil {
		return e
	}
	ss.from, ss.opts = from, *opts
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	e := ss.s.reject[strings.ToLower(to)]
	if e == nil && ss.s.flaky > 0 && ss.s.rnd.Float64() < ss.s.flaky {
		e = smtpError(451, "4.3.0", "try again later")
	}
	ss.s.mu.Unlock()
	if e != nil {
		return e
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.s.mu.Lock()
	stall := false
	for _, to := range ss.to {
		stall = stall || ss.s.stall[strings.ToLower(to)]
	}
	ss.s.mu.Unlock()
	if stall {
		if _, err := io.CopyN(io.Discard, r, 64<<10); err != nil {
			return err
		}
		ss.s.setStuck(1)
		defer ss.s.setStuck(-1)
		<-ss.s.hung
		return errors.New("server closed")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	drop, hang := false, false
	for _, to := range ss.to {
		drop = drop || ss.s.drop[strings.ToLower(to)]
		hang = hang || ss.s.hang[strings.ToLower(to)]
	}
	if hang {
		ss.s.stuck++
		ss.s.mu.Unlock()
		ss.s.notify()
		defer ss.s.setStuck(-1)
		select {
		case <-ss.s.hung:
		case <-ss.closed():
		}
		return errors.New("server closed")
	}
	if !drop {
		_, isTLS := ss.conn.TLSConnectionState()
		m := Received{From: ss.from, BodyType: string(ss.opts.Body), UTF8: ss.opts.UTF8, To: append([]string(nil), ss.to...), Data: data, TLS: isTLS, User: ss.user, At: time.Now(), Size: len(data)}
		if ss.s.noData {
			m.Data = nil
		}
		ss.s.messages = append(ss.s.messages, m)
		ss.accepted++
	}
	ss.s.mu.Unlock()
	if drop {
		_ = ss.conn.Conn().Close()
		return errors.New("connection dropped")
	}
	ss.s.notify()
	return nil
}

// setStuck counts a session held, or released.
func (s *Server) setStuck(d int) {
	s.mu.Lock()
	s.stuck += d
	s.mu.Unlock()
	s.notify()
}

// closed is done when the client closes the session's connection.
func (ss *session) closed() <-chan struct{} {
	done := make(chan struct{})
	c := ss.conn.Conn()
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		var b [1]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	}()
	return done
}

func (ss *session) Reset() { ss.from, ss.opts, ss.to = "", smtp.MailOptions{}, nil }

func (ss *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool
// that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
