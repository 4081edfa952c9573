package email

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// urlField names the setting in errors, so that an operator knows what to fix.
const urlField = "MISSIVE_SMTP_URL"

// Config configures a Sender.
type Config struct {
	// URL is the relay: smtp://[user:pass@]host[:port][?tls=required|none]
	// or smtps://[user:pass@]host[:port]. Required.
	//
	// smtp uses STARTTLS when the server offers it (opportunistic) unless
	// ?tls=required (STARTTLS or fail) or ?tls=none (never); its default port
	// is 587. smtps is TLS from the first byte; its default port is 465.
	// A user name turns on SMTP AUTH with the strongest mechanism the server
	// offers; PLAIN and LOGIN are only used over TLS.
	URL string
	// From is the sender used when Message.From is empty; "Name <addr>" is
	// accepted. Default: none (every message must then carry a From).
	From string
	// ReturnPath is the envelope sender (MAIL FROM) used when
	// Message.ReturnPath is empty. Default: the message's From address.
	ReturnPath string
	// Connections is the number of SMTP connections kept open to the relay,
	// each carrying one batch at a time, its messages pipelined: about one
	// message a round trip to the relay each. Default 8.
	Connections int
	// Timeout bounds each SMTP exchange (dial, one command, the message data).
	// Default: 30s.
	Timeout time.Duration
	// DialBackoff is how long the pool waits after a failed connection
	// attempt (421 at connect, connection refused) before it tries again;
	// the wait doubles with each failed attempt up to MaxDialBackoff and
	// ends with a good connection. Meanwhile Send fails fast with a
	// Temporary error whose RetryIn says when the pool tries again.
	// Default: 1s.
	DialBackoff time.Duration
	// MaxDialBackoff caps that wait. Default: 30s.
	MaxDialBackoff time.Duration
	// TLSConfig is used for STARTTLS and smtps. Default: the system roots,
	// TLS 1.2 or later, server name from the URL. Tests set RootCAs here.
	TLSConfig *tls.Config
	// HeloName is the name sent in EHLO. Default: the local host name.
	HeloName string
	// MessageIDDomain is the right-hand side of generated Message-IDs.
	// Default: the domain of the message's From address.
	MessageIDDomain string
	// DKIM, when set, signs every message (relaxed/relaxed, SHA-256) after
	// it is built; see DKIM. Default: nil, no signature (the relay may sign).
	DKIM *DKIM
	// Logger receives connection events at debug level. It never sees an
	// address or a body. Default: slog.Default().
	Logger *slog.Logger
}

// TLSMode says when a smtp:// connection is upgraded with STARTTLS.
type TLSMode string

const (
	// TLSOpportunistic uses STARTTLS when the server offers it.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSRequired fails the connection when the server does not offer STARTTLS.
	TLSRequired TLSMode = "required"
	// TLSNone never uses STARTTLS.
	TLSNone TLSMode = "none"
	// TLSImplicit is smtps://: TLS from the first byte.
	TLSImplicit TLSMode = "implicit"
)

// Endpoint is a parsed relay URL.
type Endpoint struct {
	Host     string
	Port     int
	TLS      TLSMode
	Username string
	Password string
}

// String returns the endpoint as a URL with the password hidden.
func (e Endpoint) String() string {
	scheme := "smtp"
	if e.TLS == TLSImplicit {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(e.Host, strconv.Itoa(e.Port))}
	if e.Username != "" {
		u.User = url.UserPassword(e.Username, "xxxxx")
	}
	if scheme == "smtp" {
		u.RawQuery = "tls=" + string(e.TLS)
	}
	return u.String()
}

// LogValue implements slog.LogValuer without the password.
func (e Endpoint) LogValue() slog.Value { return slog.StringValue(e.String()) }

// ParseURL parses and validates a relay URL (see Config.URL). Its errors
// name the setting and never contain the password.
func ParseURL(raw string) (Endpoint, error) {
	if strings.TrimSpace(raw) == "" {
		return Endpoint{}, fieldError("is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included: do not wrap it.
		return Endpoint{}, fieldError("is not a valid URL (check the port, and percent-encode special characters in the user name and password)")
	}
	var e Endpoint
	switch u.Scheme {
	case "smtp":
		e.TLS, e.Port = TLSOpportunistic, 587
	case "smtps":
		e.TLS, e.Port = TLSImplicit, 465
	default:
		return Endpoint{}, fieldError("scheme must be smtp or smtps")
	}
	if u.Opaque != "" {
		return Endpoint{}, fieldError("must be of the form smtp://host:port")
	}
	e.Host = u.Hostname()
	if e.Host == "" {
		return Endpoint{}, fieldError("host is missing")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Endpoint{}, fieldError("port must be a number from 1 to 65535")
		}
		e.Port = n
	}
	if u.Path != "" && u.Path != "/" {
		return Endpoint{}, fieldError("must not have a path")
	}
	if u.User != nil {
		e.Username = u.User.Username()
		e.Password, _ = u.User.Password()
		if e.Username == "" {
			return Endpoint{}, fieldError("user name is empty while a password is set")
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Endpoint{}, fieldError("query is not valid")
	}
	for k, v := range q {
		if k != "tls" {
			return Endpoint{}, fieldError(fmt.Sprintf("unknown parameter %q (only tls is known)", k))
		}
		if len(v) != 1 {
			return Endpoint{}, fieldError("tls is given more than once")
		}
		switch mode := TLSMode(v[0]); {
		case e.TLS == TLSImplicit && mode != TLSRequired:
			return Endpoint{}, fieldError("tls must be required (or absent) with smtps")
		case e.TLS == TLSImplicit:
		case mode == TLSOpportunistic, mode == TLSRequired, mode == TLSNone:
			e.TLS = mode
		default:
			return Endpoint{}, fieldError("tls must be opportunistic, required or none")
		}
	}
	return e, nil
}

func fieldError(msg string) error {
	return errors.New("email: " + urlField + ": " + msg)
}
