package outbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
)

// SMSFile is the name of the file SMS lines are appended to.
const SMSFile = "sms.jsonl"

// Outbox writes messages to files instead of sending them. It is safe for
// concurrent use.
type Outbox struct {
	dir      string
	defaults email.Defaults
	dkim     *email.DKIM // nil: no signature

	mu   sync.Mutex          // serialises appends to SMSFile
	seen map[string]struct{} // SMS ids written by this process
}

var _ channels.Channel = (*Outbox)(nil)

// Option configures an Outbox.
type Option func(*Outbox)

// WithEmailDefaults sets the defaults email.Build uses for messages that
// leave From, ReturnPath or the Message-ID domain empty
// (MISSIVE_EMAIL_FROM). Default: none.
func WithEmailDefaults(d email.Defaults) Option {
	return func(o *Outbox) { o.defaults = d }
}

// WithDKIM signs every .eml with d, as email.Sender does with
// email.Config.DKIM, so that the files show what a relay would receive.
// New returns d.Validate's error. Default: nil, no signature.
func WithDKIM(d *email.DKIM) Option {
	return func(o *Outbox) {
		if d == nil {
			o.dkim = nil
			return
		}
		c := *d
		o.dkim = &c
	}
}

// New creates dir if needed (mode 0700: the files hold personal data) and
// returns an Outbox writing there.
func New(dir string, opts ...Option) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("outbox: directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: creating directory: %w", err)
	}
	o := &Outbox{dir: dir, seen: map[string]struct{}{}}
	for _, opt := range opts {
		opt(o)
	}
	if o.dkim != nil {
		if err := o.dkim.Validate(); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	return o, nil
}

// Dir returns the directory the outbox writes to.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m. An email becomes <dir>/<id>.eml, written whole or not at all
// (temporary file, then rename); sending the same id again replaces it. An
// SMS becomes one JSON line appended to <dir>/sms.jsonl; an id already
// written by this process is not written again (the set of ids is kept in
// memory, so a restarted process may append a second line for an old id).
//
// The Result's ProviderID is the file name. Errors are *channels.Error:
// Permanent for a message that cannot be written (no id, no recipient, an
// unknown channel, an email email.Build rejects), Temporary for a file
// system failure.
func (o *Outbox) Send(ctx context.Context, m channels.Message) (channels.Result, error) {
	if err := ctx.Err(); err != nil {
		return channels.Result{}, channels.NewError(channels.Temporary, "", fmt.Errorf("outbox: %w", err))
	}
	if m.ID == "" {
		return channels.Result{}, channels.NewError(channels.Permanent, "", errors.New("outbox: message ID is empty"))
	}
	switch m.Channel {
	case channels.Email:
		return o.sendEmail(ctx, m)
	case channels.SMS:
		return o.sendSMS(ctx, m)
	}
	return channels.Result{}, channels.NewError(channels.Permanent, "", fmt.Errorf("outbox: unknown channel %q", m.Channel))
}

func (o *Outbox) sendEmail(ctx context.Context, m channels.Message) (channels.Result, error) {
	msg, err := email.Build(m, o.defaults)
	if err != nil {
		return channels.Result{}, channels.NewError(channels.Permanent, "", fmt.Errorf("outbox: %w", err))
	}
	var body io.WriterTo = msg
	if o.dkim != nil {
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			return channels.Result{}, channels.NewError(channels.Permanent, "", fmt.Errorf("outbox: rendering: %w", err))
		}
		signed := bytes.NewBuffer(make([]byte, 0, buf.Len()+1024))
		if err := o.dkim.Sign(signed, buf.Bytes()); err != nil {
			return channels.Result{}, channels.NewError(channels.Temporary, "", fmt.Errorf("outbox: %w", err))
		}
		body = signed
	}
	name := FileName(m.ID) + ".eml"
	f, err := os.CreateTemp(o.dir, ".tmp-*.eml")
	if err != nil {
		return channels.Result{}, channels.NewError(channels.Temporary, "", fmt.Errorf("outbox: %w", err))
	}
	tmp := f.Name()
	_, err = body.WriteTo(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// The message appears with the rename: it leaves now.
		if cerr := m.TakeClaim(ctx); cerr != nil {
			_ = os.Remove(tmp)
			return channels.Result{}, cerr
		}
		err = os.Rename(tmp, filepath.Join(o.dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return channels.Result{}, channels.NewError(channels.Temporary, "", fmt.Errorf("outbox: writing %s: %w", name, err))
	}
	return channels.Result{ProviderID: name}, nil
}

// smsLine is one line of sms.jsonl.
type smsLine struct {
	ID   string `json:"id"`
	To   string `json:"to"`
	From string `json:"from"`
	Body string `json:"body"`
	At   string `json:"at"`
}

func (o *Outbox) sendSMS(ctx context.Context, m channels.Message) (channels.Result, error) {
	if m.To == "" {
		return channels.Result{}, channels.NewError(channels.Permanent, "", errors.New("outbox: recipient is empty"))
	}
	line, err := json.Marshal(smsLine{
		ID: m.ID, To: string(m.To), From: m.From, Body: m.Body,
		At: time.Now().UTC().Format(time.RFC3339),
	})
	if err != nil {
		return channels.Result{}, channels.NewError(channels.Permanent, "", fmt.Errorf("outbox: encoding: %w", err))
	}
	line = append(line, '\n')
	res := channels.Result{ProviderID: SMSFile}

	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[m.ID]; ok {
		return res, nil
	}
	f, err := os.OpenFile(filepath.Join(o.dir, SMSFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return channels.Result{}, channels.NewError(channels.Temporary, "", fmt.Errorf("outbox: %w", err))
	}
	if err := m.TakeClaim(ctx); err != nil {
		f.Close()
		return channels.Result{}, err
	}
	// One write call per line, so that readers never see half a line from
	// this process.
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return channels.Result{}, channels.NewError(channels.Temporary, "", fmt.Errorf("outbox: appending to %s: %w", SMSFile, err))
	}
	o.seen[m.ID] = struct{}{}
	return res, nil
}

// FileName turns a send id into a safe file name (without extension):
// letters, digits, '-', '_' and '.' are kept, anything else becomes '_', and
// when anything was changed a hash of the id is appended so that two ids
// never share a file.
func FileName(id string) string {
	const maxLen = 100
	var b strings.Builder
	for i, r := range id {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == '.' && i > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == id && len(name) <= maxLen {
		return name
	}
	sum := sha256.Sum256([]byte(id))
	if len(name) > maxLen {
		name = name[:maxLen]
	}
	return name + "-" + hex.EncodeToString(sum[:4])
}
