package sms

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// Config configures a Sender. Fields map to Missive's environment variables.
type Config struct {
	// AccountSID is the Twilio account (TWILIO_ACCOUNT_SID): "AC" and 32 hex
	// digits. Required.
	AccountSID string
	// AuthToken is the account's auth token (TWILIO_AUTH_TOKEN): 32 letters
	// or digits. Required. Never logged nor put in an error.
	AuthToken string
	// From is the default sender (MISSIVE_SMS_FROM): a phone number in E.164
	// ("+33612345678") or a Messaging Service SID ("MG" and 32 hex digits),
	// which lets Twilio pick a number from the service's pool. Required;
	// Message.From, when set, overrides it.
	From string
	// APIURL is the base URL of the Twilio API (MISSIVE_TWILIO_API_URL), for
	// a regional edge ("https://api.dublin.ie1.twilio.com") or a local double
	// ("http://127.0.0.1:4567"). Scheme and host only. Default: empty, which
	// is Twilio's own https://api.twilio.com.
	APIURL string
	// StatusCallback is the URL Twilio calls with delivery status updates
	// (queued, sent, delivered, undelivered, failed). Default: empty, no
	// callback.
	StatusCallback string
	// Timeout bounds one call to Twilio when the context has no earlier
	// deadline. Default: 10s, twilio-go's own.
	Timeout time.Duration
	// Logger receives one debug record per send (the message SID, never the
	// number) and a warning when the outcome is ambiguous. Default:
	// slog.Default().
	Logger *slog.Logger
}

var (
	accountSIDRe = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	authTokenRe  = regexp.MustCompile(`^[0-9a-zA-Z]{32}$`)
	serviceSIDRe = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	e164Re       = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
)

func (c *Config) validate() error {
	var errs []error
	switch {
	case c.AccountSID == "":
		errs = append(errs, errors.New("TWILIO_ACCOUNT_SID is required"))
	case !accountSIDRe.MatchString(c.AccountSID):
		errs = append(errs, errors.New(`TWILIO_ACCOUNT_SID must be "AC" followed by 32 hex digits`))
	}
	switch {
	case c.AuthToken == "":
		errs = append(errs, errors.New("TWILIO_AUTH_TOKEN is required"))
	case !authTokenRe.MatchString(c.AuthToken):
		// The length is safe to show; the value is not.
		errs = append(errs, fmt.Errorf("TWILIO_AUTH_TOKEN must be 32 letters or digits (got %d characters)", len(c.AuthToken)))
	}
	switch {
	case c.From == "":
		errs = append(errs, errors.New("MISSIVE_SMS_FROM is required"))
	case !validSender(c.From):
		errs = append(errs, errors.New(`MISSIVE_SMS_FROM must be a phone number in E.164 ("+33612345678") or a Messaging Service SID ("MG" followed by 32 hex digits)`))
	}
	if c.APIURL != "" {
		if _, err := parseAPIURL(c.APIURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StatusCallback != "" {
		u, err := url.Parse(c.StatusCallback)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("sms: StatusCallback must be an absolute http or https URL"))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("sms: Timeout must not be negative"))
	}
	return errors.Join(errs...)
}

func validSender(s string) bool { return e164Re.MatchString(s) || serviceSIDRe.MatchString(s) }

func parseAPIURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New(`MISSIVE_TWILIO_API_URL must be an absolute http or https URL such as "http://127.0.0.1:4567"`)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("MISSIVE_TWILIO_API_URL must hold a scheme and a host only, without path, query or credentials")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Sender sends text messages through Twilio. It is safe for concurrent use.
type Sender struct {
	creds      *client.Credentials
	accountSID string
	from       string
	callback   string
	target     *url.URL // nil: Twilio's own host
	timeout    time.Duration
	transport  *http.Transport
	log        *slog.Logger
}

var _ channels.Channel = (*Sender)(nil)

// New validates cfg and returns a Sender. The error names the offending
// environment variable and never quotes the auth token.
func New(cfg Config) (*Sender, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sms: invalid configuration: %w", err)
	}
	s := &Sender{
		creds:      client.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		accountSID: cfg.AccountSID,
		from:       cfg.From,
		callback:   cfg.StatusCallback,
		timeout:    cmp.Or(cfg.Timeout, 10*time.Second),
		log:        cmp.Or(cfg.Logger, slog.Default()),
	}
	if cfg.APIURL != "" {
		s.target, _ = parseAPIURL(cfg.APIURL) // validated above
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Many workers send at once; keep their connections instead of
	// re-handshaking TLS for each message.
	t.MaxIdleConnsPerHost = 32
	s.transport = t
	return s, nil
}

// Close releases idle connections to Twilio. The Sender remains usable.
func (s *Sender) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// Send asks Twilio to send m.Body to m.To (E.164) from m.From, or from
// Config.From when m.From is empty. It returns the message SID as
// Result.ProviderID once Twilio has accepted (queued) the message; delivery
// is reported later to Config.StatusCallback.
//
// A failure is a *channels.Error: Permanent (Code = the Twilio error code,
// Feedback = what it tells of the recipient, and an *APIError inside),
// Sender (the account or sender is refused), Temporary (429, 5xx, network failure before the
// request was sent, context done before sending; RetryIn from Retry-After,
// 250 ms for a 429 without it),
// or Ambiguous (the request was sent but no usable answer came back: Twilio
// may have queued the message).
func (s *Sender) Send(ctx context.Context, m channels.Message) (channels.Result, error) {
	out := s.SendBatch(ctx, channels.Batch{
		Messages: []channels.Message{m},
		Claim:    func(ctx context.Context, _ []int) []error { return []error{m.TakeClaim(ctx)} },
	})[0]
	return out.Result, out.Err
}

var _ channels.BatchChannel = (*Sender)(nil)

// errMissingClaim stands for the answer a Batch.Claim left out: a message
// is sent only when its claim says so.
var errMissingClaim = errors.New("sms: the batch's claim gave no answer for this message")

// batchRequests bounds the requests of one batch in flight at once:
// Twilio answers 429 past an account's concurrency limit.
const batchRequests = 8

// SendBatch sends b's messages, one request each, up to batchRequests at
// once, and returns one Outcome each, in order, as Send's. It checks every
// message first (one Twilio would refuse gets its Permanent error and is
// not claimed), then calls b.Claim once with the indexes of the others
// and sends those claimed.
func (s *Sender) SendBatch(ctx context.Context, b channels.Batch) []channels.Outcome {
	out := make([]channels.Outcome, len(b.Messages))
	params := make([]*openapi.CreateMessageParams, len(b.Messages))
	var idx []int
	for i, m := range b.Messages {
		p, err := s.params(m)
		if err != nil {
			out[i].Err = err
			continue
		}
		params[i], idx = p, append(idx, i)
	}
	if len(idx) > 0 && b.Claim != nil {
		errs := b.Claim(ctx, idx)
		claimed := idx[:0:0]
		for k, i := range idx {
			err := errMissingClaim
			if k < len(errs) {
				err = errs[k]
			}
			if err != nil {
				out[i].Err = err
				continue
			}
			claimed = append(claimed, i)
		}
		idx = claimed
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, batchRequests)
	for _, i := range idx {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			out[i].Result, out[i].Err = s.create(ctx, b.Messages[i].ID, params[i])
		})
	}
	wg.Wait()
	return out
}

// params checks m and gives its request's parameters.
func (s *Sender) params(m channels.Message) (*openapi.CreateMessageParams, error) {
	if m.Channel != "" && m.Channel != channels.SMS {
		return nil, channels.NewError(channels.Permanent, "", fmt.Errorf("sms: message is for channel %q", m.Channel))
	}
	if m.To == "" {
		return nil, channels.NewError(channels.Permanent, "", errors.New("sms: message has no To number"))
	}
	if m.Body == "" {
		return nil, channels.NewError(channels.Permanent, "", errors.New("sms: message has no body"))
	}
	from := cmp.Or(m.From, s.from)
	if !validSender(from) {
		return nil, channels.NewError(channels.Permanent, "", errors.New("sms: message From is neither an E.164 number nor a Messaging Service SID"))
	}
	params := &openapi.CreateMessageParams{}
	params.SetTo(string(m.To))
	params.SetBody(m.Body)
	if strings.HasPrefix(from, "MG") {
		params.SetMessagingServiceSid(from)
	} else {
		params.SetFrom(from)
	}
	if s.callback != "" {
		params.SetStatusCallback(s.callback)
	}
	return params, nil
}

// create makes the request of the message with send id id.
func (s *Sender) create(ctx context.Context, id string, params *openapi.CreateMessageParams) (channels.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rt := &callTransport{ctx: ctx, base: s.transport, target: s.target}
	// twilio-go builds each request with context.Background(); a client per
	// call lets its transport attach ours. Building it is a few small
	// allocations, against one HTTP round trip.
	c := &client.Client{
		Credentials: s.creds,
		HTTPClient: &http.Client{
			Transport: rt,
			// Same as twilio-go's default client: never follow redirects.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(s.accountSID)
	msg, err := openapi.NewApiServiceWithClient(c).CreateMessage(params)
	if err != nil {
		ce := s.classify(ctx, rt, err)
		level := slog.LevelDebug
		if ce.Kind == channels.Ambiguous {
			level = slog.LevelWarn
		}
		s.log.LogAttrs(ctx, level, "sms: send failed",
			slog.String("send_id", id), slog.String("kind", ce.Kind.String()),
			slog.String("code", ce.Code), slog.Int("http_status", rt.status))
		return channels.Result{}, ce
	}
	if msg.Sid == nil || *msg.Sid == "" {
		ce := channels.NewError(channels.Ambiguous, "", errors.New("sms: twilio accepted the request but returned no message SID"))
		s.log.LogAttrs(ctx, slog.LevelWarn, "sms: send ambiguous", slog.String("send_id", id), slog.Int("http_status", rt.status))
		return channels.Result{}, ce
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "sms: sent", slog.String("send_id", id), slog.String("sid", *msg.Sid))
	return channels.Result{ProviderID: *msg.Sid}, nil
}

// classify turns what twilio-go returned into a *channels.Error whose text
// Missive wrote: twilio-go's own messages can quote the number.
func (s *Sender) classify(ctx context.Context, rt *callTransport, err error) *channels.Error {
	retryIn := parseRetryAfter(rt.retryAfter, time.Now())
	var tre *client.TwilioRestError
	if errors.As(err, &tre) {
		return classified(&APIError{Status: cmp.Or(tre.Status, rt.status), Code: tre.Code, MoreInfo: tre.MoreInfo}, retryIn)
	}
	var v1 *client.RestErrorV1
	if errors.As(err, &v1) {
		return classified(&APIError{Status: cmp.Or(v1.HttpStatusCode, rt.status), Code: v1.Code}, retryIn)
	}
	switch {
	case rt.status >= 400:
		// An error answer twilio-go could not decode (a proxy's HTML page).
		return classified(&APIError{Status: rt.status}, retryIn)
	case rt.status != 0:
		// Twilio answered with success but the body was unreadable: the
		// message is most likely queued.
		return channels.NewError(channels.Ambiguous, "", fmt.Errorf("sms: twilio answered HTTP %d with an unreadable body", rt.status))
	case rt.wrote.Load():
		// The request left; the answer did not come (timeout, cancel, reset).
		return channels.NewError(channels.Ambiguous, "", fmt.Errorf("sms: no answer from twilio: %w", cause(ctx, err)))
	}
	return channels.NewError(channels.Temporary, "", fmt.Errorf("sms: calling twilio: %w", cause(ctx, err)))
}

// cause prefers the context's error, which says timeout or cancel plainly,
// over the transport's.
func cause(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

// callTransport carries one Send's request: it binds it to the caller's
// context, points it at the configured API host, and records what
// classification needs (status, Retry-After, whether the request was sent).
type callTransport struct {
	ctx    context.Context
	base   http.RoundTripper
	target *url.URL

	wrote      atomic.Bool // set from the transport's writing goroutine
	status     int
	retryAfter string
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.ctx.Err(); err != nil {
		return nil, err
	}
	ctx := httptrace.WithClientTrace(t.ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				t.wrote.Store(true)
			}
		},
	})
	r := req.Clone(ctx)
	if t.target != nil {
		r.URL.Scheme = t.target.Scheme
		r.URL.Host = t.target.Host
		r.Host = ""
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	t.retryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode >= 400 {
		// twilio-go decodes error answers without closing their body, which
		// would pin the connection: read it here (bounded) and close.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	return resp, nil
}
