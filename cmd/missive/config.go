package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
)

var (
	errUsage = errors.New("usage")
	// errHelp is returned once -h printed a command's help: exit 0, like
	// the flag package's own -h.
	errHelp = errors.New("help")
)

// isHelp tells whether arg asks for help rather than naming a subcommand.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// config is the whole configuration, from the environment then flags.
type config struct {
	RedisURL string
	Prefix   string
	HTTPAddr string
	// The HTTP server's limits and proxies, parsed into http.
	HTTPReadTimeout  string
	HTTPWriteTimeout string
	HTTPMaxConns     string
	TrustedProxies   string
	ClientIPHeader   string
	ConsoleIdle      string
	ConsoleMax       string
	PublicURL        string
	Secret           string
	TokenKeys        string
	SenderName       string
	Mailto           string
	DataKeys         string
	APIKeys          string
	SMTPURL          string
	EmailFrom        string
	ReturnPath       string
	SoftBounces      string
	MaxBounceRate    string
	MaxComplaints    string
	BounceDomain     string
	BounceSMTPAddr   string
	SESTopics        string
	SendGridKey      string
	MailgunKey       string
	PostmarkAuth     string
	DKIMDomain       string
	DKIMSelector     string
	DKIMKeyFile      string
	TwilioSID        string
	TwilioToken      string
	SMSFrom          string
	TwilioAPIURL     string
	OutboxDir        string
	DefaultTZ        string
	Caps             string
	QuietSMS         string
	QuietEmail       string
	RateEmail        string
	RateSMS          string
	Concurrency      int
	SMTPConns        int
	LogLevel         string
	LogFormat        string
	OpsAddr          string
	InactiveAfter    string

	// ownRedis is set by the commands that start a Redis of their own
	// when MISSIVE_REDIS_URL is empty (bench).
	ownRedis bool
	// envErrs are the environment's values that parseConfig could not
	// read; validate reports them with the others.
	envErrs []error

	// Derived by validate.
	dkim      *email.DKIM
	feedback  feedback.Policy
	tokenKeys map[string][]byte
	activeKey string
	dataKeys  *store.Keyring
	capRules  []throttle.CapRule
	quiet     map[channels.Kind]throttle.Calendar
	rates     map[channels.Kind]throttle.Rate
	level     slog.Level
	inactive  time.Duration
	http      httpLimits
}

// setting ties a flag to its environment variable.
type setting struct {
	flag, env, def, help string
	dst                  *string
}

func (c *config) settings() []setting {
	return []setting{
		{"redis-url", "MISSIVE_REDIS_URL", "", "Redis: redis://, rediss://, redis-sentinel:// or redis-cluster:// URL; required but for the demo; memory:// runs an in-process Redis that keeps nothing, for a trial", &c.RedisURL},
		{"prefix", "MISSIVE_PREFIX", "missive", "prefix of every Redis key and queue", &c.Prefix},
		{"http-addr", "MISSIVE_HTTP_ADDR", ":8080", "HTTP listen address", &c.HTTPAddr},
		{"http-read-timeout", "MISSIVE_HTTP_READ_TIMEOUT", "30s", "time a request's header and body have to arrive (a bulk import, once its key is checked, has 15 minutes)", &c.HTTPReadTimeout},
		{"http-write-timeout", "MISSIVE_HTTP_WRITE_TIMEOUT", "60s", "time from a request's header to the end of its answer", &c.HTTPWriteTimeout},
		{"http-max-conns", "MISSIVE_HTTP_MAX_CONNS", "1024", "HTTP connections open at once; one more is answered 503 and closed", &c.HTTPMaxConns},
		{"trusted-proxies", "MISSIVE_TRUSTED_PROXIES", "", "reverse proxies (CIDRs or addresses, comma-separated) whose client address header is believed; empty: the peer is the client", &c.TrustedProxies},
		{"client-ip-header", "MISSIVE_CLIENT_IP_HEADER", "X-Forwarded-For", "header the trusted proxies write the client's address to: X-Forwarded-For or Forwarded", &c.ClientIPHeader},
		{"console-session-idle", "MISSIVE_CONSOLE_SESSION_IDLE", "30m", "a console session ends after this long without a request", &c.ConsoleIdle},
		{"console-session-max", "MISSIVE_CONSOLE_SESSION_MAX", "12h", "a console session ends this long after sign-in, whatever its activity", &c.ConsoleMax},
		{"public-url", "MISSIVE_PUBLIC_URL", "http://localhost:8080", "base of links in messages", &c.PublicURL},
		{"secret", "MISSIVE_SECRET", "", "key for tokens and address hashes, 32 bytes or more", &c.Secret},
		{"token-keys", "MISSIVE_TOKEN_KEYS", "", "keys of unsubscribe and preference links: id:base64key[,id:base64key...], the first signs, the others still verify; empty derives one from MISSIVE_SECRET", &c.TokenKeys},
		{"sender-name", "MISSIVE_SENDER_NAME", "Missive", "how pages and SMS replies name the sender", &c.SenderName},
		{"unsubscribe-mailto", "MISSIVE_UNSUBSCRIBE_MAILTO", "", "mailbox added to List-Unsubscribe as a mailto: link", &c.Mailto},
		{"data-keys", "MISSIVE_DATA_KEYS", "", "keyring encrypting contacts at rest (AES-256-GCM): id:base64key[,id:base64key...], ids of 1-16 lower-case letters or digits, 32-byte keys; the first seals, the others still open until \"missive keys rotate\" re-sealed everything", &c.DataKeys},
		{"api-keys", "MISSIVE_API_KEYS", "", "API keys: id:secret[:scope+scope...][,...], scopes among campaigns, contacts, sends, privacy; no scope list: every scope", &c.APIKeys},
		{"smtp-url", "MISSIVE_SMTP_URL", "", "SMTP relay: smtp(s)://user:pass@host:port[?tls=required|none]; empty writes emails to the outbox", &c.SMTPURL},
		{"email-from", "MISSIVE_EMAIL_FROM", "", "default From of emails", &c.EmailFrom},
		{"soft-bounces", "MISSIVE_SOFT_BOUNCES", "3/7d:30d", "soft bounces that suspend an address: count/window:suspension", &c.SoftBounces},
		{"max-bounce-rate", "MISSIVE_MAX_BOUNCE_RATE", "5%", "bounce rate past which a run pauses its campaign", &c.MaxBounceRate},
		{"max-complaint-rate", "MISSIVE_MAX_COMPLAINT_RATE", "0.3%", "complaint rate past which a run pauses its campaign", &c.MaxComplaints},
		{"bounce-domain", "MISSIVE_BOUNCE_DOMAIN", "", "domain of VERP envelope senders (bounces+<send>.<mac>@domain); empty: MISSIVE_RETURN_PATH", &c.BounceDomain},
		{"bounce-smtp-addr", "MISSIVE_BOUNCE_SMTP_ADDR", "", "listen address of the bounce SMTP listener (part of serve and worker); needs MISSIVE_BOUNCE_DOMAIN", &c.BounceSMTPAddr},
		{"ses-topic-arns", "MISSIVE_SES_TOPIC_ARNS", "", "SNS topics whose Amazon SES notifications are accepted, comma-separated", &c.SESTopics},
		{"sendgrid-public-key", "MISSIVE_SENDGRID_PUBLIC_KEY", "", "SendGrid signed event webhook verification key (base64)", &c.SendGridKey},
		{"mailgun-signing-key", "MISSIVE_MAILGUN_SIGNING_KEY", "", "Mailgun webhook signing key", &c.MailgunKey},
		{"postmark-auth", "MISSIVE_POSTMARK_AUTH", "", "user:password of the Postmark webhook's basic auth", &c.PostmarkAuth},
		{"dkim-domain", "MISSIVE_DKIM_DOMAIN", "", "DKIM signing domain (d=); empty: emails are not signed", &c.DKIMDomain},
		{"dkim-selector", "MISSIVE_DKIM_SELECTOR", "", "DKIM selector (s=)", &c.DKIMSelector},
		{"dkim-key-file", "MISSIVE_DKIM_KEY_FILE", "", "PEM file of the DKIM private key (RSA 2048+ or Ed25519)", &c.DKIMKeyFile},
		{"return-path", "MISSIVE_RETURN_PATH", "", "envelope sender (MAIL FROM) of emails; empty is the From address", &c.ReturnPath},
		{"twilio-account-sid", "TWILIO_ACCOUNT_SID", "", "Twilio account SID; empty writes SMS to the outbox", &c.TwilioSID},
		{"twilio-auth-token", "TWILIO_AUTH_TOKEN", "", "Twilio auth token", &c.TwilioToken},
		{"sms-from", "MISSIVE_SMS_FROM", "", "SMS sender: E.164 number or Messaging Service SID (MG...)", &c.SMSFrom},
		{"twilio-api-url", "MISSIVE_TWILIO_API_URL", "", "Twilio API base URL (regional edge, local double); empty is Twilio's own", &c.TwilioAPIURL},
		{"outbox", "MISSIVE_OUTBOX_DIR", "./outbox", "folder of the outbox channel (.eml files, sms.jsonl)", &c.OutboxDir},
		{"default-timezone", "MISSIVE_DEFAULT_TIMEZONE", "Europe/Paris", "time zone of contacts whose zone is unknown", &c.DefaultTZ},
		{"caps", "MISSIVE_CAPS", "email:marketing:2/7d, sms:marketing:1/1d", "frequency caps", &c.Caps},
		{"quiet-sms", "MISSIVE_QUIET_SMS", "default", `SMS sending hours in the recipient's zone ("mon-sat 08:00-20:00; holidays 2026-12-25"); "default" is Monday-Saturday 08:00-20:00 without French public holidays`, &c.QuietSMS},
		{"quiet-email", "MISSIVE_QUIET_EMAIL", "", "email sending hours; empty is always open", &c.QuietEmail},
		{"rate-email", "MISSIVE_RATE_EMAIL", "", `pace of the SMTP relay, shared by all workers, like 1000/s; empty or "off": as fast as the relay takes them`, &c.RateEmail},
		{"rate-sms", "MISSIVE_RATE_SMS", "30/s", `pace of Twilio, shared by all workers; "off": none`, &c.RateSMS},
		{"inactive-after", "MISSIVE_INACTIVE_AFTER", "", `how long a contact without any granted consent is kept after its last activity, in days or years ("1095d", "3y"); empty is 3 years (CNIL, prospects); "off" never purges`, &c.InactiveAfter},
		{"log-level", "MISSIVE_LOG_LEVEL", "info", "debug, info, warn or error", &c.LogLevel},
		{"log-format", "MISSIVE_LOG_FORMAT", "text", "logs as text or json (one JSON object a line)", &c.LogFormat},
		{"ops-addr", "MISSIVE_OPS_ADDR", ":9090", `listen address of the operations server (GET /metrics, /healthz, /readyz) of every role; "off": none`, &c.OpsAddr},
	}
}

// parseConfig reads the environment, then flags from args.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("missive "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range c.settings() {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		fs.StringVar(s.dst, s.flag, def, s.help+" ("+s.env+")")
	}
	for _, s := range []struct {
		flag, env string
		def, max  int
		help      string
		dst       *int
	}{
		{"concurrency", "MISSIVE_CONCURRENCY", 32, 1000, "tasks a worker runs at once", &c.Concurrency},
		{"smtp-conns", "MISSIVE_SMTP_CONNS", 8, 256, "SMTP connections each worker keeps open to the relay, each about one message a round trip", &c.SMTPConns},
	} {
		def := s.def
		if v := getenv(s.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > s.max {
				// Reported by validate with the other settings at fault.
				c.envErrs = append(c.envErrs, fmt.Errorf("%s (--%s): must be a whole number from 1 to %d", s.env, s.flag, s.max))
			} else {
				def = n
			}
		}
		fs.IntVar(s.dst, s.flag, def, s.help+" ("+s.env+")")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

// validate checks every value and derives the typed ones. demo relaxes
// the secrets, which it makes up, and the Redis, which it runs in-process.
// Every setting at fault is reported at once, one line each (configError).
func (c *config) validate(demo bool) error {
	var err error
	errs := c.envErrs
	bad := func(err error) { errs = append(errs, err) }
	if !demo {
		if c.RedisURL == "" && !c.ownRedis {
			bad(errors.New("MISSIVE_REDIS_URL (--redis-url): required: redis://, rediss://, redis-sentinel:// or redis-cluster:// URL, or memory:// for an in-process Redis that keeps nothing (a trial)"))
		}
		if len(c.Secret) < 32 {
			bad(errors.New("MISSIVE_SECRET (--secret): required, 32 bytes or more"))
		}
		if c.APIKeys == "" {
			bad(errors.New("MISSIVE_API_KEYS (--api-keys): required: id:secret[,id:secret...]"))
		}
		if c.DataKeys == "" {
			bad(errors.New("MISSIVE_DATA_KEYS (--data-keys): required: id:base64key[,...]"))
		}
	}
	if c.DataKeys != "" {
		if c.dataKeys, err = parseDataKeys(c.DataKeys); err != nil {
			bad(err)
		}
	}
	if c.TokenKeys != "" {
		if c.tokenKeys, c.activeKey, err = parseTokenKeys(c.TokenKeys); err != nil {
			bad(err)
		}
	}
	if c.DKIMDomain != "" || c.DKIMSelector != "" || c.DKIMKeyFile != "" {
		if c.dkim, err = loadDKIM(c.DKIMDomain, c.DKIMSelector, c.DKIMKeyFile); err != nil {
			bad(err)
		}
	}
	if err := c.parseHTTPLimits(); err != nil {
		bad(err)
	}
	if c.feedback, err = parseFeedback(c.SoftBounces, c.MaxBounceRate, c.MaxComplaints); err != nil {
		bad(err)
	}
	if c.BounceSMTPAddr != "" && c.BounceDomain == "" {
		bad(errors.New("MISSIVE_BOUNCE_SMTP_ADDR: needs MISSIVE_BOUNCE_DOMAIN"))
	}
	if c.BounceDomain != "" {
		if _, err := dispatcher.NormalizeEmail("x@" + c.BounceDomain); err != nil {
			bad(errors.New("MISSIVE_BOUNCE_DOMAIN (--bounce-domain): not a domain name"))
		}
	}
	if c.PostmarkAuth != "" && !strings.Contains(c.PostmarkAuth, ":") {
		bad(errors.New("MISSIVE_POSTMARK_AUTH (--postmark-auth): want user:password"))
	}
	if c.Mailto != "" {
		if _, err := dispatcher.NormalizeEmail(c.Mailto); err != nil {
			bad(errors.New("MISSIVE_UNSUBSCRIBE_MAILTO (--unsubscribe-mailto): must be a bare email address"))
		}
	}
	if _, err := time.LoadLocation(c.DefaultTZ); err != nil || c.DefaultTZ == "" {
		bad(errors.New("MISSIVE_DEFAULT_TIMEZONE (--default-timezone): not an IANA time zone name"))
	}
	if c.capRules, err = throttle.ParseCapRules(c.Caps); err != nil {
		bad(fmt.Errorf("MISSIVE_CAPS (--caps): %w", err))
	}
	c.quiet = map[channels.Kind]throttle.Calendar{}
	for k, spec := range map[channels.Kind]string{channels.SMS: c.QuietSMS, channels.Email: c.QuietEmail} {
		env := "MISSIVE_QUIET_" + strings.ToUpper(string(k))
		switch spec {
		case "":
		case "default":
			y := time.Now().Year()
			c.quiet[k] = throttle.DefaultSMSCalendar(y, y+1, y+2)
		default:
			cal, err := throttle.ParseCalendar(spec)
			if err != nil {
				bad(fmt.Errorf("%s: %w", env, err))
				continue
			}
			c.quiet[k] = cal
		}
	}
	c.rates = map[channels.Kind]throttle.Rate{}
	for k, spec := range map[channels.Kind]string{channels.Email: c.RateEmail, channels.SMS: c.RateSMS} {
		if spec == "" || spec == "off" {
			continue
		}
		r, err := throttle.ParseRate(spec)
		if err != nil {
			bad(fmt.Errorf("MISSIVE_RATE_%s: %w", strings.ToUpper(string(k)), err))
			continue
		}
		c.rates[k] = r
	}
	if c.inactive, err = parseInactiveAfter(c.InactiveAfter); err != nil {
		bad(err)
	}
	if err := c.level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad(errors.New("MISSIVE_LOG_LEVEL (--log-level): must be debug, info, warn or error"))
	}
	if err := checkLogFormat(c.LogFormat); err != nil {
		return err
	}
	if c.OpsAddr == "" {
		return errors.New(`MISSIVE_OPS_ADDR (--ops-addr): want a listen address like :9090, or "off"`)
	}
	if (c.TwilioSID == "") != (c.TwilioToken == "") {
		bad(errors.New("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: set both or neither"))
	}
	if c.TwilioSID != "" && c.SMSFrom == "" {
		bad(errors.New("MISSIVE_SMS_FROM (--sms-from): required with Twilio"))
	}
	if c.ReturnPath != "" {
		if _, err := dispatcher.NormalizeEmail(c.ReturnPath); err != nil {
			bad(errors.New("MISSIVE_RETURN_PATH (--return-path): must be a bare email address"))
		}
	}
	if c.SMTPURL != "" && c.EmailFrom == "" {
		bad(errors.New("MISSIVE_EMAIL_FROM (--email-from): required with an SMTP relay"))
	}
	if err := checkRedisURL(c.RedisURL); err != nil {
		bad(err)
	}
	return configError(errs)
}

// checkRedisURL refuses a MISSIVE_REDIS_URL whose scheme no client takes,
// before anything dials it. The URL is never quoted: it may hold a
// password.
func checkRedisURL(url string) error {
	scheme, _, ok := strings.Cut(url, "://")
	switch {
	case url == "":
		return nil
	case !ok:
		return errors.New("MISSIVE_REDIS_URL (--redis-url): want scheme://..., the scheme redis, rediss, redis-sentinel, redis-cluster or memory")
	}
	switch scheme {
	case "redis", "rediss", "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
		return nil
	case "memory":
		if url != memoryRedis {
			return errors.New("MISSIVE_REDIS_URL (--redis-url): memory:// takes nothing after it")
		}
		return nil
	}
	return errors.New("MISSIVE_REDIS_URL (--redis-url): the scheme must be redis, rediss, redis-sentinel, redis-cluster or memory")
}

// memoryRedis is the MISSIVE_REDIS_URL of the in-process Redis: for a
// trial only, it keeps nothing past the process.
const memoryRedis = "memory://"

// configError is every setting at fault, one line each; nil if none.
// A joined error (errors.Join) counts as each of its errors.
func configError(errs []error) error {
	var flat []error
	for _, e := range errs {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			flat = append(flat, j.Unwrap()...)
		} else {
			flat = append(flat, e)
		}
	}
	errs = flat
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = "  " + e.Error()
	}
	return fmt.Errorf("%d settings are missing or invalid:\n%s", len(errs), strings.Join(lines, "\n"))
}

// checkLogFormat checks MISSIVE_LOG_FORMAT.
func checkLogFormat(f string) error {
	if f != "text" && f != "json" {
		return errors.New("MISSIVE_LOG_FORMAT (--log-format): must be text or json")
	}
	return nil
}

// logger is the logger of every command: text or JSON lines to w, as
// MISSIVE_LOG_FORMAT says, from level on.
func (c *config) logger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseInactiveAfter reads MISSIVE_INACTIVE_AFTER: "" is the default (0
// for core.Config), "off" disables the purge (negative), else a
// positive whole number of days ("1095d") or years ("3y", 365 days each).
func parseInactiveAfter(s string) (time.Duration, error) {
	const bad = "MISSIVE_INACTIVE_AFTER (--inactive-after): want a positive number of days or years (\"1095d\", \"3y\"), or \"off\""
	switch s {
	case "":
		return 0, nil
	case "off":
		return -1, nil
	}
	day := 24 * time.Hour
	unit := map[byte]time.Duration{'d': day, 'y': 365 * day}[s[len(s)-1]]
	n, err := strconv.Atoi(s[:len(s)-1])
	if unit == 0 || err != nil || n < 1 || n > 100*365 {
		return 0, errors.New(bad)
	}
	return time.Duration(n) * unit, nil
}

// parseDataKeys reads MISSIVE_DATA_KEYS: id:base64key pairs of 32-byte
// keys, the first active. Errors name the entry, never the key.
func parseDataKeys(s string) (*store.Keyring, error) {
	keys := map[string][]byte{}
	active := ""
	for i, part := range strings.Split(s, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || !tokenKeyID.MatchString(id) {
			return nil, fmt.Errorf("MISSIVE_DATA_KEYS (--data-keys): entry %d: want id:base64key, the id 1-16 lower-case letters or digits", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("MISSIVE_DATA_KEYS (--data-keys): entry %d (%s): key must be 32 bytes in base64", i+1, id)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("MISSIVE_DATA_KEYS (--data-keys): entry %d: id %s is used twice", i+1, id)
		}
		keys[id] = key
		if active == "" {
			active = id
		}
	}
	k, err := store.NewKeyring(keys, active)
	if err != nil {
		return nil, fmt.Errorf("MISSIVE_DATA_KEYS (--data-keys): %w", err)
	}
	return k, nil
}

var tokenKeyID = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// parseTokenKeys reads MISSIVE_TOKEN_KEYS: id:base64key pairs, the first
// active. Errors name the entry, never the key.
func parseTokenKeys(s string) (map[string][]byte, string, error) {
	keys := map[string][]byte{}
	active := ""
	for i, part := range strings.Split(s, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || !tokenKeyID.MatchString(id) {
			return nil, "", fmt.Errorf("MISSIVE_TOKEN_KEYS (--token-keys): entry %d: want id:base64key, the id 1-16 lower-case letters or digits", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) < 32 {
			return nil, "", fmt.Errorf("MISSIVE_TOKEN_KEYS (--token-keys): entry %d (%s): the key must be 32 bytes or more, in base64", i+1, id)
		}
		if _, dup := keys[id]; dup {
			return nil, "", fmt.Errorf("MISSIVE_TOKEN_KEYS (--token-keys): entry %d: id %s is used twice", i+1, id)
		}
		keys[id] = key
		if active == "" {
			active = id
		}
	}
	return keys, active, nil
}

// loadDKIM reads the DKIM settings; all three go together.
func loadDKIM(domain, selector, keyFile string) (*email.DKIM, error) {
	if domain == "" || selector == "" || keyFile == "" {
		return nil, errors.New("MISSIVE_DKIM_DOMAIN, MISSIVE_DKIM_SELECTOR and MISSIVE_DKIM_KEY_FILE: set all three or none")
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("MISSIVE_DKIM_KEY_FILE (--dkim-key-file): %w", err)
	}
	key, err := email.ParseDKIMKey(pem)
	if err != nil {
		return nil, fmt.Errorf("MISSIVE_DKIM_KEY_FILE (--dkim-key-file): %w", err)
	}
	d := &email.DKIM{Domain: domain, Selector: selector, PrivateKey: key}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("MISSIVE_DKIM_DOMAIN / MISSIVE_DKIM_SELECTOR: %w", err)
	}
	return d, nil
}

// parseFeedback reads the feedback policy: "3/7d:30d" soft bounces, and
// rates as percentages ("5%", "0.3%").
func parseFeedback(soft, bounceRate, complaintRate string) (feedback.Policy, error) {
	var p feedback.Policy
	rule, suspend, ok := strings.Cut(soft, ":")
	caps, err := throttle.ParseCapRules("email:" + rule)
	if !ok || err != nil || len(caps) != 1 {
		return p, errors.New("MISSIVE_SOFT_BOUNCES (--soft-bounces): want count/window:suspension, like 3/7d:30d")
	}
	window, err := throttle.ParseCapRules("email:1/" + suspend)
	if err != nil {
		return p, errors.New("MISSIVE_SOFT_BOUNCES (--soft-bounces): the suspension must be a duration like 30d or 12h")
	}
	p.SoftBounces, p.SoftWindow, p.SoftSuspend = caps[0].Limit, caps[0].Window, window[0].Window
	for _, r := range []struct {
		name, value string
		dst         *float64
	}{{"MISSIVE_MAX_BOUNCE_RATE (--max-bounce-rate)", bounceRate, &p.MaxBounceRate}, {"MISSIVE_MAX_COMPLAINT_RATE (--max-complaint-rate)", complaintRate, &p.MaxComplaintRate}} {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(r.value), "%"), 64)
		if err != nil || v <= 0 || v > 100 || !strings.HasSuffix(r.value, "%") {
			return p, fmt.Errorf("%s: want a percentage above 0, like 5%%", r.name)
		}
		*r.dst = v / 100
	}
	return p, nil
}
