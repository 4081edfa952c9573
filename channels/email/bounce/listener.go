package bounce

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/missive-dev/missive/throttle/connlimit"
)

// ListenerConfig configures a Listener.
type ListenerConfig struct {
	// Addr is the TCP address to listen on, ":2525"; ":0" picks a port
	// (see Listener.Addr). Required.
	Addr string
	// Domain is the bounce domain: only <Prefix>+<token>@<Domain> is
	// accepted as a recipient, the domain compared without regard to case.
	// Required.
	Domain string
	// Prefix is the local-part prefix of VERP addresses. Default "bounces".
	Prefix string
	// MaxSize is the largest message accepted, in bytes; a larger one gets
	// 552 5.3.4. Default DefaultMaxSize (2 MiB: a returned copy of the
	// largest message templates render fits); upper bound MaxSize (10 MiB).
	MaxSize int64
	// MaxSessions is the most SMTP sessions open at once; a connection
	// past it is answered 421 4.3.2 and closed, so the sender retries
	// later. With MaxSize it bounds the memory the listener holds:
	// about MaxSessions x 3 x MaxSize. Default 16.
	MaxSessions int
	// CheckToken, when set, tells whether a VERP token is one of ours
	// (its MAC verifies): a recipient whose token fails is refused at
	// RCPT with 550 5.7.1, before any message data is read. Missive wires
	// it to the feedback package's verifier.
	CheckToken func(token string) bool
	// Handle is called once per accepted recipient token with the parsed
	// report. An error makes the listener answer 451 4.3.0, so the sending
	// MTA retries the whole message: Handle must be idempotent, since a
	// message with several tokens is handled again for all of them.
	// Required.
	Handle func(ctx context.Context, token string, r *Report) error
	// HandleTimeout bounds one Handle call. Default 30 s.
	HandleTimeout time.Duration
	// TLSConfig, when set, makes the listener offer STARTTLS. TLS is never
	// required: MTAs deliver bounces in the clear when they must.
	TLSConfig *tls.Config
	// Logger receives one line per message and per refused recipient,
	// never an address, a token or message content. Default slog.Default().
	Logger *slog.Logger
}

// DefaultMaxSize is the default ListenerConfig.MaxSize.
const DefaultMaxSize = 2 << 20

// The listener's fixed limits.
const (
	// maxRecipientsPerMessage is the most RCPT TO per message; more get 452 4.5.3.
	maxRecipientsPerMessage = 10
	ioTimeout               = 60 * time.Second
)

var (
	errNoMailbox = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied or no such mailbox"}
	errRetry     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
)

// busyReply is the whole answer to a connection past MaxSessions.
const busyReply = "421 4.3.2 Too many sessions, try again later\r\n"

// Listener is an SMTP server that receives bounces and complaints sent to
// VERP addresses and hands each parsed report to ListenerConfig.Handle.
// It accepts only its own VERP recipients: it is no relay, and it never
// sends mail, so it cannot backscatter.
type Listener struct {
	cfg    ListenerConfig
	srv    *smtp.Server
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{}
	once   sync.Once
}

// Listen validates cfg, binds cfg.Addr and starts serving in the
// background. It returns an error when a required field is missing or the
// address cannot be bound.
func Listen(cfg ListenerConfig) (*Listener, error) {
	cfg.Prefix = cmp.Or(cfg.Prefix, "bounces")
	switch {
	case cfg.MaxSize <= 0:
		cfg.MaxSize = DefaultMaxSize
	case cfg.MaxSize > MaxSize:
		cfg.MaxSize = MaxSize
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	cfg.HandleTimeout = cmp.Or(cfg.HandleTimeout, 30*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Addr == "":
		return nil, errors.New("bounce: listener: Addr is required")
	case cfg.Domain == "" || strings.ContainsAny(cfg.Domain, "@ <>"):
		return nil, errors.New("bounce: listener: Domain must be a domain name")
	case strings.ContainsAny(cfg.Prefix, "+@ <>\""):
		return nil, errors.New("bounce: listener: Prefix must not hold + @ < > \" or spaces")
	case cfg.Handle == nil:
		return nil, errors.New("bounce: listener: Handle is required")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("bounce: listener: %w", err)
	}
	ln = connlimit.New(ln, cfg.MaxSessions, busyReply)
	l := &Listener{cfg: cfg, ln: ln, served: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(backend{l})
	srv.Domain = cfg.Domain
	srv.ReadTimeout = ioTimeout
	srv.WriteTimeout = ioTimeout
	srv.MaxMessageBytes = cfg.MaxSize
	srv.MaxRecipients = maxRecipientsPerMessage
	srv.TLSConfig = cfg.TLSConfig
	// go-smtp's own log lines may quote commands, hence addresses.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l.srv = srv

	go func() {
		defer close(l.served)
		_ = srv.Serve(ln)
	}()
	return l, nil
}

// Addr is the address the listener is bound to, "127.0.0.1:2525".
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Close stops accepting, closes open sessions and cancels running Handle
// calls; a message being handled then gets no 250, and its sender retries.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.srv.Close()
		<-l.served
	})
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

type backend struct{ l *Listener }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &session{l: b.l}, nil
}

// session is one SMTP session. It does not implement smtp.AuthSession:
// AUTH is not offered.
type session struct {
	l      *Listener
	tokens []string
}

func (s *session) Mail(string, *smtp.MailOptions) error {
	// Any sender, the null sender <> first of all: bounces come from it.
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	at := strings.LastIndexByte(to, '@')
	if at < 0 || !strings.EqualFold(to[at+1:], s.l.cfg.Domain) {
		s.l.cfg.Logger.Info("bounce: recipient refused", "reason", "domain")
		return errNoMailbox
	}
	token, ok := LocalVERP(to, s.l.cfg.Prefix)
	if !ok {
		s.l.cfg.Logger.Info("bounce: recipient refused", "reason", "mailbox")
		return errNoMailbox
	}
	if check := s.l.cfg.CheckToken; check != nil && !check(token) {
		s.l.cfg.Logger.Info("bounce: recipient refused", "reason", "mac")
		return errNoMailbox
	}
	s.tokens = append(s.tokens, token)
	return nil
}

func (s *session) Data(r io.Reader) error {
	log := s.l.cfg.Logger
	// go-smtp's reader stops at MaxSize with ErrDataTooLarge: Parse reads
	// it straight, so the message is held once, not copied first.
	rep, err := Parse(r)
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		// go-smtp's ErrDataTooLarge: it answers 552 5.3.4 (unwrapped, or
		// it would answer 554 with the error's text).
		return se
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrMalformed):
		// Accept and drop: refusing would make the MTA bounce our bounce.
		log.Warn("bounce: report dropped", "error_kind", errorKind(err))
		return nil
	case err != nil:
		return errRetry // a broken connection: nobody reads the answer
	}
	seen := map[string]bool{}
	for _, token := range s.tokens {
		if seen[token] {
			continue
		}
		seen[token] = true
		ctx, cancel := context.WithTimeout(s.l.ctx, s.l.cfg.HandleTimeout)
		err := s.l.cfg.Handle(ctx, token, rep)
		cancel()
		if err != nil {
			log.Error("bounce: handler failed, sender will retry", "kind", rep.Kind, "error", err)
			return errRetry
		}
	}
	log.Info("bounce: report received", "kind", rep.Kind, "recipients", len(rep.Recipients), "tokens", len(seen))
	return nil
}

func (s *session) Reset() { s.tokens = nil }

func (s *session) Logout() error { return nil }

func errorKind(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return "read"
}
