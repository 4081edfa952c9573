// Package twiliotest is an in-process double of the part of Twilio's REST API
// that Missive uses, for tests: sending a message
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json) with Twilio's
// authentication, validation, status codes and JSON shapes, plus failure
// injection; and Twilio's side of the webhooks: the forms it posts, signed
// as it signs them, and a reader of the TwiML answers.
//
// Point the real twilio-go client at it through sms.Config.APIURL:
//
//	srv := twiliotest.NewServer(t)
//	s, _ := sms.New(sms.Config{
//		AccountSID: twiliotest.AccountSID,
//		AuthToken:  twiliotest.AuthToken,
//		From:       "+15005550006",
//		APIURL:     srv.URL(),
//	})
//	srv.FailOnce("+15005550001", 429, 20429)
//	...
//	sent, err := srv.Wait(1, time.Second)
//
// Start runs the same double outside a test (missive bench); its caller
// closes it.
package twiliotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Credentials the Server accepts. They look like real ones because twilio-go
// refuses credentials that are not letters and digits before any request.
const (
	AccountSID = "AC0123456789abcdef0123456789abcdef"
	AuthToken  = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
)

// Sent is a message the Server accepted.
type Sent struct {
	To                  string
	From                string
	MessagingServiceSid string
	Body                string
	StatusCallback      string
	SID                 string
}

type failure struct {
	status, code int
	once         bool
}

// Server is a Twilio API double on 127.0.0.1. It is safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu         sync.Mutex
	sent       []Sent
	sentAt     []time.Time   // when each of sent was accepted
	changed    chan struct{} // closed and replaced on every accepted message
	failures   map[string][]failure
	retryAfter string
	delay      time.Duration
	failed     int // answers that were injected failures
	closeOnce  sync.Once
}

// NewServer starts a Server and, when tb is not nil, closes it when the test
// ends.
func NewServer(tb testing.TB) *Server {
	s, err := Start()
	if err != nil {
		if tb == nil {
			panic(fmt.Sprintf("twiliotest: %v", err))
		}
		tb.Fatalf("twiliotest: %v", err)
	}
	if tb != nil {
		tb.Cleanup(s.Close)
	}
	return s
}

// Start starts a Server on 127.0.0.1; the caller closes it.
func Start() (*Server, error) {
	s := &Server{changed: make(chan struct{}), failures: map[string][]failure{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.Listener = l
	s.srv.Start()
	return s, nil
}

// URL is the base URL to use as sms.Config.APIURL (MISSIVE_TWILIO_API_URL).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the Server. It may be called more than once.
func (s *Server) Close() { s.closeOnce.Do(s.srv.Close) }

// Fail makes every message to the number to fail with the given HTTP status
// and Twilio error code (for example 400 and 21610, 429 and 20429, 500 and
// 20500) until ClearFailures. An empty to matches every number.
func (s *Server) Fail(to string, httpStatus, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[to] = append(s.failures[to], failure{status: httpStatus, code: code})
}

// FailOnce makes the next message to the number fail with the given HTTP
// status and Twilio error code. Calls queue up, and one-shot failures come
// before lasting ones (Fail). An empty to matches every number.
func (s *Server) FailOnce(to string, httpStatus, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[to] = append(s.failures[to], failure{status: httpStatus, code: code, once: true})
}

// ClearFailures removes every injected failure.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.failures)
}

// SetRetryAfter makes answers with status 429 or 503 carry
// "Retry-After: seconds"; 0 removes the header (Twilio's usual answer).
func (s *Server) SetRetryAfter(seconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = ""
	if seconds > 0 {
		s.retryAfter = strconv.Itoa(seconds)
	}
}

// SetDelay makes the Server wait d before answering (or until the client
// gives up), to test timeouts.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Failed is the number of requests answered with an injected failure
// (Fail, FailOnce).
func (s *Server) Failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Messages returns the messages accepted so far, in order of arrival.
func (s *Server) Messages() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// Arrivals returns when each message was accepted, in the order of
// Messages.
func (s *Server) Arrivals() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.sentAt...)
}

// Wait waits until at least n messages were accepted and returns them all; it
// returns an error saying how many arrived if timeout passes first.
func (s *Server) Wait(n int, timeout time.Duration) ([]Sent, error) {
	return s.Await(context.Background(), n, timeout)
}

// Await is Wait that also gives up when ctx ends.
func (s *Server) Await(ctx context.Context, n int, timeout time.Duration) ([]Sent, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got, changed := len(s.sent), s.changed
		if got >= n {
			sent := append([]Sent(nil), s.sent...)
			s.mu.Unlock()
			return sent, nil
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return s.Messages(), fmt.Errorf("twiliotest: %d of %d messages after %v", got, n, timeout)
		case <-ctx.Done():
			return s.Messages(), fmt.Errorf("twiliotest: %d of %d messages: %w", got, n, ctx.Err())
		}
	}
}

var (
	messagesPath = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages\.json$`)
	e164         = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	serviceSID   = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		// Reading the body first lets net/http notice a client that hangs
		// up, which ends r.Context().
		_ = r.ParseForm()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}

	// Twilio authenticates before it routes: a wrong token gets 401 on any path.
	user, pass, ok := r.BasicAuth()
	if !ok || user != AccountSID || pass != AuthToken {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	match := messagesPath.FindStringSubmatch(r.URL.Path)
	if match == nil || match[1] != AccountSID {
		writeError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Could not parse the request body")
		return
	}
	m := Sent{
		To:                  r.PostForm.Get("To"),
		From:                r.PostForm.Get("From"),
		MessagingServiceSid: r.PostForm.Get("MessagingServiceSid"),
		Body:                r.PostForm.Get("Body"),
		StatusCallback:      r.PostForm.Get("StatusCallback"),
	}

	// Twilio's own messages, number included: Missive must not pass them on.
	switch {
	case m.To == "":
		writeError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case !e164.MatchString(m.To):
		writeError(w, http.StatusBadRequest, 21211, fmt.Sprintf("Invalid 'To' Phone Number: %s", m.To))
		return
	case m.From == "" && m.MessagingServiceSid == "":
		writeError(w, http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
		return
	case m.MessagingServiceSid != "" && !serviceSID.MatchString(m.MessagingServiceSid):
		writeError(w, http.StatusBadRequest, 21701, fmt.Sprintf("The Messaging Service Sid %s is invalid.", m.MessagingServiceSid))
		return
	case m.From != "" && !e164.MatchString(m.From):
		writeError(w, http.StatusBadRequest, 21212, fmt.Sprintf("Invalid From Number (caller ID): %s", m.From))
		return
	case m.Body == "":
		writeError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case utf8.RuneCountInString(m.Body) > 1600:
		writeError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
		return
	}
	if f, ok := s.takeFailure(m.To); ok {
		s.mu.Lock()
		retryAfter := s.retryAfter
		s.failed++
		s.mu.Unlock()
		if retryAfter != "" && (f.status == http.StatusTooManyRequests || f.status == http.StatusServiceUnavailable) {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeError(w, f.status, f.code, failureMessage(f.code, m.To))
		return
	}

	m.SID = newSID("SM")
	s.mu.Lock()
	s.sent = append(s.sent, m)
	s.sentAt = append(s.sentAt, time.Now())
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	writeJSON(w, http.StatusCreated, resource(m, time.Now()))
}

// takeFailure returns the failure for the number, or for every number: the
// oldest one-shot failure first (and removes it), else the oldest lasting one.
func (s *Server) takeFailure(to string) (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range []string{to, ""} {
		fs := s.failures[key]
		if i := slices.IndexFunc(fs, func(f failure) bool { return f.once }); i >= 0 {
			f := fs[i]
			s.failures[key] = slices.Delete(fs, i, i+1)
			return f, true
		}
		if len(fs) > 0 {
			return fs[0], true
		}
	}
	return failure{}, false
}

// failureMessages are Twilio's messages for the codes tests inject, {to}
// standing for the number.
var failureMessages = map[int]string{
	20429: "Too Many Requests",
	21211: "Invalid 'To' Phone Number: {to}",
	21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}",
	21610: "Attempt to send to unsubscribed recipient",
	21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number via SMS.",
	21614: "'To' number {to} is not a valid mobile number",
}

func failureMessage(code int, to string) string {
	msg, ok := failureMessages[code]
	if !ok {
		msg = fmt.Sprintf("Error %d sending to {to}", code)
	}
	return strings.ReplaceAll(msg, "{to}", to)
}

// resource is the JSON message resource Twilio answers with on creation.
func resource(m Sent, now time.Time) map[string]any {
	date := now.UTC().Format(time.RFC1123Z)
	uri := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s", AccountSID, m.SID)
	status := "queued"
	var from, service any
	if m.MessagingServiceSid != "" {
		// Through a Messaging Service, Twilio answers "accepted" and picks
		// the sender later.
		status, service = "accepted", m.MessagingServiceSid
	}
	if m.From != "" {
		from = m.From
	}
	return map[string]any{
		"account_sid":           AccountSID,
		"api_version":           "2010-04-01",
		"body":                  m.Body,
		"date_created":          date,
		"date_sent":             nil,
		"date_updated":          date,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  from,
		"messaging_service_sid": service,
		"num_media":             "0",
		"num_segments":          strconv.Itoa(segments(m.Body)),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                status,
		"subresource_uris":      map[string]string{"media": uri + "/Media.json"},
		"to":                    m.To,
		"uri":                   uri + ".json",
	}
}

// segments approximates Twilio's count for the response only: 160/153
// characters per part for plain ASCII, 70/67 otherwise. Missive's real
// counting (GSM-7 with extension characters) lives in package templates.
func segments(body string) int {
	single, multi := 160, 153
	if strings.ContainsFunc(body, func(r rune) bool { return r > 0x7e || (r < 0x20 && r != '\n' && r != '\r') }) {
		single, multi = 70, 67
	}
	n := utf8.RuneCountInString(body)
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, map[string]any{
		"code":      code,
		"message":   message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newSID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
