package sms_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	sender  = "+15005550006"
	service = "MG0123456789abcdef0123456789abcdef"
	to      = "+33612345678"
	body    = "Soldes -30% ce week-end. STOP au 36xxx"
)

type testBundle struct {
	srv    *twiliotest.Server
	sender *sms.Sender
	// logs is written under the JSON handler's lock and read once Send
	// has returned: the Sender logs from Send, never in the background.
	logs *bytes.Buffer
}

func setup(t *testing.T, mod ...func(*sms.Config)) *testBundle {
	t.Helper()
	b := &testBundle{srv: twiliotest.NewServer(t), logs: &bytes.Buffer{}}
	b.sender = newSender(t, b.srv.URL(), append([]func(*sms.Config){func(c *sms.Config) {
		c.StatusCallback = "https://missive.example/webhooks/twilio/status"
		c.Logger = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}}, mod...)...)
	return b
}

var ignoreSID = cmpopts.IgnoreFields(twiliotest.Sent{}, "SID")

func TestSend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string // Config.From
		msg    channels.Message
		want   twiliotest.Sent
	}{
		{"number sender", sender,
			channels.Message{ID: "s1", Channel: channels.SMS, To: to, Body: body},
			twiliotest.Sent{To: to, From: sender, Body: body, StatusCallback: "https://missive.example/webhooks/twilio/status"}},
		{"messaging service", service,
			channels.Message{ID: "s2", To: to, Body: body},
			twiliotest.Sent{To: to, MessagingServiceSid: service, Body: body, StatusCallback: "https://missive.example/webhooks/twilio/status"}},
		{"message From overrides config", service,
			channels.Message{ID: "s3", To: to, From: "+33700000000", Body: "Bonjour é€"},
			twiliotest.Sent{To: to, From: "+33700000000", Body: "Bonjour é€", StatusCallback: "https://missive.example/webhooks/twilio/status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *sms.Config) { c.From = tt.config })
			res, err := b.sender.Send(context.Background(), tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			sent, err := b.srv.Wait(1, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]twiliotest.Sent{tt.want}, sent, ignoreSID); diff != "" {
				t.Errorf("message at Twilio (-want +got):\n%s", diff)
			}
			if !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(res.ProviderID) || res.ProviderID != sent[0].SID {
				t.Errorf("ProviderID = %q, Twilio's SID = %q", res.ProviderID, sent[0].SID)
			}
		})
	}
}

// A batch is claimed once, for the messages Twilio could take: a message
// without a body is refused unclaimed, one whose claim fails is not sent,
// a 429 comes back as its own outcome, and the others leave once each.
func TestSendBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	held := errors.New("held")
	var msgs []channels.Message
	for i := range 12 {
		msgs = append(msgs, channels.Message{ID: fmt.Sprintf("s%d", i), To: channels.Address(fmt.Sprintf("+336120000%02d", i)), Body: body})
	}
	msgs[3].Body = ""
	b.srv.FailOnce("+33612000007", 429, 20429)
	var claims [][]int
	out := b.sender.SendBatch(context.Background(), channels.Batch{Messages: msgs, Claim: func(_ context.Context, idx []int) []error {
		claims = append(claims, idx)
		errs := make([]error, len(idx))
		for k, i := range idx {
			if i == 5 {
				errs[k] = held
			}
		}
		return errs
	}})
	if diff := cmp.Diff([][]int{{0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11}}, claims); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	sids := map[string]bool{}
	for i, o := range out {
		switch i {
		case 3:
			if channels.KindOf(o.Err) != channels.Permanent {
				t.Errorf("message without a body: %v, want permanent", o.Err)
			}
		case 5:
			if !errors.Is(o.Err, held) {
				t.Errorf("message whose claim failed: %v, want the claim's error", o.Err)
			}
		case 7:
			if channels.KindOf(o.Err) != channels.Temporary {
				t.Errorf("message answered 429: %v, want temporary", o.Err)
			}
		default:
			if o.Err != nil || o.Result.ProviderID == "" || sids[o.Result.ProviderID] {
				t.Errorf("message %d: %+v, want its own SID", i, o)
			}
			sids[o.Result.ProviderID] = true
		}
	}
	sent := b.srv.Messages()
	if len(sent) != 9 {
		t.Errorf("%d messages at Twilio, want 9", len(sent))
	}
	for _, m := range sent {
		if m.To == string(msgs[5].To) || m.To == string(msgs[7].To) {
			t.Errorf("%s reached Twilio", m.To)
		}
	}
}

// TestAPIURL checks that the rewritten requests reach the configured host and
// nothing else: a Sender pointed at one double leaves another untouched.
func TestAPIURL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := twiliotest.NewServer(t)
	if _, err := b.sender.Send(context.Background(), channels.Message{To: to, Body: body}); err != nil {
		t.Fatal(err)
	}
	if got := len(b.srv.Messages()); got != 1 {
		t.Errorf("configured host got %d messages, want 1", got)
	}
	if got := len(other.Messages()); got != 0 {
		t.Errorf("other host got %d messages, want 0", got)
	}

	// The Host header follows the URL, so a regional edge or a proxy routing
	// on it sees its own name.
	var host string
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host = r.Host
		http.Error(w, `{"code":20500,"message":"x","status":500}`, http.StatusInternalServerError)
	}))
	defer edge.Close()
	s := newSender(t, edge.URL)
	_, _ = s.Send(context.Background(), channels.Message{To: to, Body: body})
	if want := strings.TrimPrefix(edge.URL, "http://"); host != want {
		t.Errorf("Host = %q, want %q", host, want)
	}
}

func newSender(t *testing.T, apiURL string, mod ...func(*sms.Config)) *sms.Sender {
	t.Helper()
	cfg := sms.Config{AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken, From: sender, APIURL: apiURL}
	for _, f := range mod {
		f(&cfg)
	}
	s, err := sms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type wantErr struct {
	Kind      channels.ErrorKind
	Code      string
	Feedback  channels.FeedbackKind
	RetryIn   time.Duration
	Status    int // of the *APIError, -1 when none is expected
	Recipient bool
	OptedOut  bool
}

func describe(err error) wantErr {
	var ce *channels.Error
	if !errors.As(err, &ce) {
		return wantErr{}
	}
	got := wantErr{Kind: ce.Kind, Code: ce.Code, Feedback: ce.Feedback, RetryIn: ce.RetryIn, Status: -1}
	var ae *sms.APIError
	if errors.As(err, &ae) {
		got.Status, got.Recipient, got.OptedOut = ae.Status, ae.Recipient(), ae.OptedOut()
	}
	return got
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(b *testBundle)
		to      string
		token   string
		want    wantErr
	}{
		{"wrong token", nil, to, strings.Repeat("ab", 16),
			wantErr{Kind: channels.Sender, Code: "20003", Status: 401}},
		{"recipient replied STOP", func(b *testBundle) { b.srv.Fail(to, 400, 21610) }, to, "",
			wantErr{Kind: channels.Permanent, Code: "21610", Feedback: channels.OptedOut, Status: 400, Recipient: true, OptedOut: true}},
		{"invalid To, found by Twilio", nil, "0612345678", "",
			wantErr{Kind: channels.Permanent, Code: "21211", Feedback: channels.HardBounce, Status: 400, Recipient: true}},
		{"not a mobile", func(b *testBundle) { b.srv.Fail(to, 400, 21614) }, to, "",
			wantErr{Kind: channels.Permanent, Code: "21614", Feedback: channels.HardBounce, Status: 400, Recipient: true}},
		{"unknown handset", func(b *testBundle) { b.srv.Fail(to, 400, 30005) }, to, "",
			wantErr{Kind: channels.Permanent, Code: "30005", Feedback: channels.HardBounce, Status: 400, Recipient: true}},
		{"landline", func(b *testBundle) { b.srv.Fail(to, 400, 30006) }, to, "",
			wantErr{Kind: channels.Permanent, Code: "30006", Feedback: channels.HardBounce, Status: 400, Recipient: true}},
		{"filtered content says nothing of the recipient", func(b *testBundle) { b.srv.Fail(to, 400, 30007) }, to, "",
			wantErr{Kind: channels.Permanent, Code: "30007", Status: 400}},
		{"unreachable handset is temporary", func(b *testBundle) { b.srv.Fail(to, 400, 30003) }, to, "",
			wantErr{Kind: channels.Temporary, Code: "30003", Status: 400}},
		{"region not enabled is not the recipient's fault", func(b *testBundle) { b.srv.Fail(to, 400, 21408) }, to, "",
			wantErr{Kind: channels.Sender, Code: "21408", Status: 400}},
		{"cannot route", func(b *testBundle) { b.srv.Fail(to, 400, 21612) }, to, "",
			wantErr{Kind: channels.Permanent, Code: "21612", Status: 400}},
		{"too many requests", func(b *testBundle) { b.srv.Fail(to, 429, 20429) }, to, "",
			wantErr{Kind: channels.Temporary, Code: "20429", Status: 429, RetryIn: 250 * time.Millisecond}},
		{"too many requests with Retry-After", func(b *testBundle) { b.srv.Fail(to, 429, 20429); b.srv.SetRetryAfter(7) }, to, "",
			wantErr{Kind: channels.Temporary, Code: "20429", Status: 429, RetryIn: 7 * time.Second}},
		{"server error", func(b *testBundle) { b.srv.Fail("", 500, 20500) }, to, "",
			wantErr{Kind: channels.Temporary, Code: "20500", Status: 500}},
		{"unavailable", func(b *testBundle) { b.srv.Fail("", 503, 20503); b.srv.SetRetryAfter(2) }, to, "",
			wantErr{Kind: channels.Temporary, Code: "20503", Status: 503, RetryIn: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *sms.Config) {
				if tt.token != "" {
					c.AuthToken = tt.token
				}
			})
			if tt.prepare != nil {
				tt.prepare(b)
			}
			_, err := b.sender.Send(context.Background(), channels.Message{ID: "s1", To: channels.Address(tt.to), Body: body})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if diff := cmp.Diff(tt.want, describe(err)); diff != "" {
				t.Errorf("error %q (-want +got):\n%s", err, diff)
			}
			assertClean(t, err.Error(), tt.to, tt.token)
			assertClean(t, fmt.Sprintf("%+v", err), tt.to, tt.token)
			assertClean(t, b.logs.String(), tt.to, tt.token)
			if len(b.srv.Messages()) != 0 {
				t.Error("a failed message was recorded as sent")
			}
		})
	}
}

// assertClean fails if s holds the phone number, the body or a token.
func assertClean(t *testing.T, s, number, token string) {
	t.Helper()
	for _, secret := range []string{number, strings.TrimPrefix(number, "+"), body, twiliotest.AuthToken, token} {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("%q leaks %q", s, secret)
		}
	}
}

func TestFailOnceThenRetrySucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.FailOnce(to, 429, 20429)
	msg := channels.Message{To: to, Body: body}
	if _, err := b.sender.Send(context.Background(), msg); channels.KindOf(err) != channels.Temporary {
		t.Fatalf("first send: %v, want a temporary error", err)
	}
	if _, err := b.sender.Send(context.Background(), msg); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	t.Run("deadline while Twilio is silent is ambiguous", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.srv.SetDelay(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.sender.Send(ctx, channels.Message{To: to, Body: body})
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Send took %v despite a 100ms deadline", took)
		}
		if channels.KindOf(err) != channels.Ambiguous || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want ambiguous, wrapping DeadlineExceeded", err)
		}
		assertClean(t, b.logs.String(), to, "")
	})
	t.Run("Config.Timeout bounds a call without deadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *sms.Config) { c.Timeout = 100 * time.Millisecond })
		b.srv.SetDelay(5 * time.Second)
		_, err := b.sender.Send(context.Background(), channels.Message{To: to, Body: body})
		if channels.KindOf(err) != channels.Ambiguous {
			t.Errorf("err = %v, want ambiguous", err)
		}
	})
	t.Run("cancelled before sending is temporary and sends nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := b.sender.Send(ctx, channels.Message{To: to, Body: body})
		if channels.KindOf(err) != channels.Temporary || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want temporary, wrapping Canceled", err)
		}
		if len(b.srv.Messages()) != 0 {
			t.Error("a message was sent under a cancelled context")
		}
	})
}

func TestNetworkAndProxyErrors(t *testing.T) {
	t.Parallel()
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = newSender(t, "http://"+addr).Send(context.Background(), channels.Message{To: to, Body: body})
		if channels.KindOf(err) != channels.Temporary {
			t.Errorf("err = %v, want temporary", err)
		}
		var ce *channels.Error
		if !errors.As(err, &ce) {
			t.Errorf("err = %T, want a *channels.Error", err)
		}
		assertClean(t, err.Error(), to, "")
	})
	t.Run("HTML error page from a proxy", func(t *testing.T) {
		t.Parallel()
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html><body>502 Bad Gateway</body></html>")
		}))
		defer proxy.Close()
		_, err := newSender(t, proxy.URL).Send(context.Background(), channels.Message{To: to, Body: body})
		if diff := cmp.Diff(wantErr{Kind: channels.Temporary, Status: 502}, describe(err)); diff != "" {
			t.Errorf("err %v (-want +got):\n%s", err, diff)
		}
	})
	t.Run("unreadable success is ambiguous", func(t *testing.T) {
		t.Parallel()
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, "{not json")
		}))
		defer api.Close()
		_, err := newSender(t, api.URL).Send(context.Background(), channels.Message{To: to, Body: body})
		if channels.KindOf(err) != channels.Ambiguous {
			t.Errorf("err = %v, want ambiguous", err)
		}
	})
}

func TestSendRejectsBadMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name string
		msg  channels.Message
	}{
		{"no To", channels.Message{Body: body}},
		{"no body", channels.Message{To: to}},
		{"email message", channels.Message{Channel: channels.Email, To: to, Body: body}},
		{"bad From", channels.Message{To: to, From: "Missive", Body: body}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.sender.Send(context.Background(), tt.msg)
			if channels.KindOf(err) != channels.Permanent {
				t.Errorf("err = %v, want permanent", err)
			}
			assertClean(t, err.Error(), to, "")
		})
	}
	if len(b.srv.Messages()) != 0 {
		t.Error("a bad message reached Twilio")
	}
}

func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 64
	b.srv.FailOnce("+33600000007", 429, 20429)
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			res, err := b.sender.Send(context.Background(), channels.Message{To: channels.Address(fmt.Sprintf("+336%08d", i)), Body: body})
			ids[i], errs[i] = res.ProviderID, err
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	failed := 0
	for i, err := range errs {
		switch {
		case err != nil && channels.KindOf(err) == channels.Temporary && i == 7:
			failed++
		case err != nil:
			t.Errorf("send %d: %v", i, err)
		case seen[ids[i]]:
			t.Errorf("send %d: duplicate SID", i)
		default:
			seen[ids[i]] = true
		}
	}
	if failed != 1 {
		t.Errorf("%d injected failures seen, want 1", failed)
	}
	if sent, err := b.srv.Wait(n-1, time.Second); err != nil || len(sent) != n-1 {
		t.Errorf("Twilio got %d messages (%v), want %d", len(sent), err, n-1)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	valid := sms.Config{AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken, From: sender}
	secret := "not-a-token-but-secret-anyway!!" // 31 chars with symbols
	tests := []struct {
		name string
		mod  func(*sms.Config)
		want []string // substrings of the error; nil: valid
	}{
		{"valid number sender", func(*sms.Config) {}, nil},
		{"valid service sender, edge URL", func(c *sms.Config) { c.From = service; c.APIURL = "https://api.dublin.ie1.twilio.com/" }, nil},
		{"everything missing", func(c *sms.Config) { *c = sms.Config{} },
			[]string{"TWILIO_ACCOUNT_SID is required", "TWILIO_AUTH_TOKEN is required", "MISSIVE_SMS_FROM is required"}},
		{"account SID shape", func(c *sms.Config) { c.AccountSID = "AC123" }, []string{"TWILIO_ACCOUNT_SID must be"}},
		{"API key instead of account", func(c *sms.Config) { c.AccountSID = "SK" + twiliotest.AccountSID[2:] }, []string{"TWILIO_ACCOUNT_SID must be"}},
		{"token shape", func(c *sms.Config) { c.AuthToken = secret }, []string{"TWILIO_AUTH_TOKEN must be 32 letters or digits (got 31 characters)"}},
		{"sender shape", func(c *sms.Config) { c.From = "0612345678" }, []string{"MISSIVE_SMS_FROM must be"}},
		{"API URL with path", func(c *sms.Config) { c.APIURL = "http://127.0.0.1:4567/v1" }, []string{"MISSIVE_TWILIO_API_URL"}},
		{"API URL without scheme", func(c *sms.Config) { c.APIURL = "127.0.0.1:4567" }, []string{"MISSIVE_TWILIO_API_URL"}},
		{"relative callback", func(c *sms.Config) { c.StatusCallback = "/webhooks/twilio/status" }, []string{"StatusCallback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mod(&cfg)
			s, err := sms.New(cfg)
			if s != nil {
				defer s.Close()
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted the configuration")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Error("error quotes the auth token")
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	// {HTTP status, Twilio code} by kind; status 0 is a status callback,
	// which carries a code only.
	tests := map[channels.ErrorKind][][2]int{
		channels.Temporary: {{429, 20429}, {429, 0}, {400, 20429}, {500, 20500}, {503, 0}, {0, 30003}, {0, 0}},
		channels.Permanent: {{400, 21211}, {400, 21610}, {400, 21614}, {400, 21612}, {404, 20404}, {0, 30005}, {0, 30006}, {0, 30007}},
		channels.Sender:    {{400, 21408}, {401, 20003}},
	}
	var got, want []string
	for kind, answers := range tests {
		for _, a := range answers {
			want = append(want, fmt.Sprintf("%d/%d %s", a[0], a[1], kind))
			got = append(got, fmt.Sprintf("%d/%d %s", a[0], a[1], sms.Classify(a[0], a[1])))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Classify (-want +got):\n%s", diff)
	}
}

func TestLogsHoldNoPersonalData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.FailOnce(to, 400, 21211)
	_, _ = b.sender.Send(context.Background(), channels.Message{ID: "send-1", To: to, Body: body})
	res, err := b.sender.Send(context.Background(), channels.Message{ID: "send-2", To: to, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	logs := b.logs.String()
	if !strings.Contains(logs, res.ProviderID) || !strings.Contains(logs, "send-1") {
		t.Errorf("logs miss the SID or the send id:\n%s", logs)
	}
	assertClean(t, logs, to, "")
}

// TestErrorAnswersReuseConnections guards against twilio-go leaving error
// bodies open: a campaign hitting many opted-out numbers would otherwise open
// one connection (and TLS handshake) per message.
func TestErrorAnswersReuseConnections(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := 0
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}`)
		// A chunked answer whose end the JSON decoder does not need to see,
		// as Twilio's can be.
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "\n")
	}))
	api.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	api.Start()
	defer api.Close()
	s := newSender(t, api.URL)
	for range 5 {
		if _, err := s.Send(context.Background(), channels.Message{To: to, Body: body}); channels.KindOf(err) != channels.Permanent {
			t.Fatalf("err = %v, want permanent", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("5 sequential sends opened %d connections, want 1", conns)
	}
}

func TestValidSignature(t *testing.T) {
	const u = "https://missive.example/webhooks/twilio/inbound"
	form := url.Values{"From": {"+33612345678"}, "Body": {"STOP"}, "MessageSid": {"SM" + strings.Repeat("ab", 16)}}
	params := map[string]string{}
	for k := range form {
		params[k] = form.Get(k)
	}
	sig := twiliotest.Sign(twiliotest.AuthToken, u, form)
	if !sms.ValidSignature(twiliotest.AuthToken, u, params, sig) {
		t.Fatal("a signature made as Twilio does is refused")
	}
	params["Body"] = "START"
	if sms.ValidSignature(twiliotest.AuthToken, u, params, sig) {
		t.Error("a changed parameter still validates")
	}
	params["Body"] = "STOP"
	if sms.ValidSignature(strings.Repeat("0", 32), u, params, sig) || sms.ValidSignature(twiliotest.AuthToken, u+"?x=1", params, sig) {
		t.Error("another token or URL still validates")
	}
}
