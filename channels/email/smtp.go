package email

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/textproto"
	"strings"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/missive-dev/missive/channels"
)

// The mail transactions of a batch (RFC 5321 3.3) over one connection.
//
// go-mail sends a command and waits for its reply: MAIL FROM, RCPT TO,
// DATA and the data cost four round trips a message. Its smtp.Client
// exports the session's textproto.Conn for extensions; the transactions
// are written there, while go-mail keeps the dial, EHLO, STARTTLS, AUTH
// and QUIT. When the relay offers PIPELINING (RFC 2920), a write carries
// the data of one message, its end and the envelope of the next, and
// their replies are read together: one round trip a message. Without it,
// each command waits for its reply, as go-mail's do. Either way there is
// no NOOP before a message and no RSET after one that went: two round
// trips of six with go-mail's defaults. A connection that died while idle
// fails at the first reply, before any data, and the batch redials once;
// a refused transaction is reset before the next MAIL FROM (conn.rset).
//
// The commands are go-mail's (Client.sendSingleMsg and smtp.Client's Mail,
// Rcpt and Data) for our client: MAIL FROM with BODY=8BITMIME and SMTPUTF8
// when the relay announces them, no DSN, one RCPT TO a recipient, the
// message refused before MAIL FROM when it is 8bit and the relay has no
// 8BITMIME, and the data written by msg.WriteTo through textproto's
// DotWriter.

// job is one claimed message of a batch.
type job struct {
	msg   *mail.Msg
	from  string   // the reverse-path, "<addr>", as go-mail's GetSender(false)
	rcpts []string // the forward-paths
	index int      // in the batch
	out   *channels.Outcome

	err    *channels.Error    // its failure, once known
	step   mail.SendErrReason // the step that failed
	ready  bool               // DATA was answered 354: the relay waits for the data
	dotEnd int64              // where its data ends on the wire (wire.queued); 0 until written
	sent   bool               // the relay accepted it
	again  bool               // not sent for a connection that failed: it may go over another
}

// newJob reads msg's envelope as go-mail's Client.Send does.
func newJob(ctx context.Context, msg *mail.Msg) (*job, error) {
	from, err := msg.GetSender(false)
	if err != nil {
		return nil, classify(ctx, mail.ErrGetSender, 0, "")
	}
	rcpts, err := msg.GetRecipients()
	if err != nil {
		return nil, classify(ctx, mail.ErrGetRcpts, 0, "")
	}
	// go-mail's Mail and Rcpt refuse these; our commands do not go
	// through them. Build's addresses never have CR or LF.
	if strings.ContainsAny(from, "\r\n") {
		return nil, classify(ctx, mail.ErrGetSender, 0, "")
	}
	for _, r := range rcpts {
		if strings.ContainsAny(r, "\r\n") {
			return nil, classify(ctx, mail.ErrGetRcpts, 0, "")
		}
	}
	return &job{msg: msg, from: from, rcpts: rcpts}, nil
}

func (j *job) fail(step mail.SendErrReason, err *channels.Error) {
	j.step, j.err = step, err
}

// reset makes j as before it was sent, for another connection.
func (j *job) reset() {
	j.err, j.step, j.ready, j.dotEnd, j.sent, j.again = nil, 0, false, 0, false, false
	j.out.Err = nil
}

// transactions sends jobs over one open connection.
type transactions struct {
	ctx context.Context
	c   *conn
	sc  *smtp.Client
	end func() bool // stops watching ctx; false when it interrupted the connection

	wire *wire

	pipelining bool
	enhanced   bool   // the relay announced ENHANCEDSTATUSCODES
	eightBit   bool   // the relay announced 8BITMIME
	mailParams string // after MAIL FROM:<addr>

	pending []expect        // commands written whose replies are unread
	dataOut bool            // message data of the batch went out
	refused *channels.Error // MAIL FROM refused: the batch stops
	noReply bool            // the connection failed, or the relay closes it (421)
}

// expect is a reply awaited.
type expect struct {
	step mail.SendErrReason
	code int  // the reply wanted (25: 250 or 251)
	job  *job // nil for RSET
}

// transactions starts an exchange over c, which must be open; ctx's end
// interrupts it. Call stop when done.
func (c *conn) transactions(ctx context.Context) *transactions {
	x := &transactions{ctx: ctx, c: c, sc: c.sc, end: c.watch(ctx)}
	x.wire = &wire{w: c.sc.Text.W}
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(x.wire, 4096)
	} else {
		c.bw.Reset(x.wire)
	}
	x.pipelining, _ = c.sc.Extension("PIPELINING")
	x.enhanced, _ = c.sc.Extension("ENHANCEDSTATUSCODES")
	x.eightBit, _ = c.sc.Extension("8BITMIME")
	if x.eightBit {
		x.mailParams += " BODY=8BITMIME"
	}
	if ok, _ := c.sc.Extension("SMTPUTF8"); ok {
		x.mailParams += " SMTPUTF8"
	}
	return x
}

// stop stops watching ctx and reports whether it interrupted the
// connection, which must then be dropped.
func (x *transactions) stop() bool { return !x.end() }

// run sends jobs in order. It returns a non-nil error when the connection
// must be dropped: it failed, the relay closes it, its state is unknown,
// or the relay waits for data that must not come. finish then says what
// became of each job.
func (x *transactions) run(jobs []*job) error {
	var ready *job // answered 354; its data goes with the next commands
	for i := 0; i <= len(jobs); i++ {
		if err := x.ctx.Err(); err != nil {
			if ready != nil {
				// The relay waits for data: only closing the connection
				// ends the transaction without a message.
				return err
			}
			return nil
		}
		if ready != nil {
			if err := x.data(ready); err != nil {
				return err
			}
			if err := x.step(); err != nil {
				return err
			}
			ready = nil
		}
		if i < len(jobs) {
			if err := x.envelope(jobs[i]); err != nil {
				return err
			}
		}
		if err := x.sync(); err != nil {
			return err
		}
		if x.refused != nil {
			return nil
		}
		if i < len(jobs) && jobs[i].ready {
			ready = jobs[i]
		}
	}
	return nil
}

// envelope writes RSET when a refused transaction may be open, then j's
// MAIL FROM, RCPT TO and DATA. Without pipelining each waits for its
// reply, and a refusal stops the transaction there.
func (x *transactions) envelope(j *job) error {
	if j.msg.Encoding() == string(mail.NoEncoding) && !x.eightBit {
		j.fail(mail.ErrNoUnencoded, classify(x.ctx, mail.ErrNoUnencoded, 0, ""))
		return nil
	}
	if x.c.rset {
		x.cmd(expect{step: mail.ErrSMTPReset, code: 250}, "RSET")
		if err := x.step(); err != nil {
			return err
		}
	}
	x.cmd(expect{step: mail.ErrSMTPMailFrom, code: 250, job: j}, "MAIL FROM:", j.from, x.mailParams)
	if err := x.step(); err != nil || j.err != nil {
		return err
	}
	for _, r := range j.rcpts {
		x.cmd(expect{step: mail.ErrSMTPRcptTo, code: 25, job: j}, "RCPT TO:", r)
		if err := x.step(); err != nil {
			return err
		}
	}
	if j.err != nil {
		return nil
	}
	x.cmd(expect{step: mail.ErrSMTPData, code: 354, job: j}, "DATA")
	return x.step()
}

// data writes j's message and its end.
func (x *transactions) data(j *job) error {
	x.dataOut = true
	if err := x.sc.UpdateDeadline(x.c.timeout); err != nil {
		return err
	}
	dw := &dotWriter{w: x.c.bw}
	if _, err := j.msg.WriteTo(dw); err != nil {
		// The wire does not fail, so the message did not render. Its
		// data must not end: closing the connection discards it.
		j.fail(mail.ErrWriteContent, classify(x.ctx, mail.ErrWriteContent, 0, ""))
		return err
	}
	_ = dw.Close() // flushes c.bw into the wire, which does not fail
	j.dotEnd = x.wire.queued
	x.pending = append(x.pending, expect{step: mail.ErrSMTPDataClose, code: 250, job: j})
	return nil
}

// cmd writes a command line.
func (x *transactions) cmd(e expect, parts ...string) {
	for _, p := range parts {
		_, _ = x.c.bw.WriteString(p)
	}
	_, _ = x.c.bw.WriteString("\r\n")
	x.pending = append(x.pending, e)
}

// step waits for the replies without pipelining.
func (x *transactions) step() error {
	if x.pipelining {
		return nil
	}
	return x.sync()
}

// sync sends what was written and reads the replies to it, in order. It
// returns an error when the connection must be dropped.
func (x *transactions) sync() error {
	if err := x.sc.UpdateDeadline(x.c.timeout); err != nil {
		return x.failed(err)
	}
	_ = x.c.bw.Flush()
	if err := x.wire.flush(); err != nil {
		return x.failed(err)
	}
	for len(x.pending) > 0 {
		e := x.pending[0]
		x.pending = x.pending[1:]
		_, _, err := x.sc.Text.ReadResponse(e.code)
		if err := x.reply(e, err); err != nil {
			return err
		}
	}
	return nil
}

// failed records that the connection failed (no reply).
func (x *transactions) failed(err error) error {
	x.pending = x.pending[:0]
	x.noReply = true
	return err
}

// errUnexpectedReply: a reply neither wanted nor a refusal, or a 354 to a
// DATA after a refused recipient (a relay that ignores RFC 2920 3.1, or a
// message with several recipients, one refused). The session's state is
// unknown, or data is awaited that must not go: only closing the
// connection ends it.
var errUnexpectedReply = errors.New("email: unexpected reply")

// errRelayClosing: the relay answered 421 and closes the connection.
var errRelayClosing = errors.New("email: the relay closes the connection (421)")

// reply handles the reply (err nil: the one wanted) to a command.
func (x *transactions) reply(e expect, err error) error {
	var te *textproto.Error
	if err != nil && !errors.As(err, &te) {
		return x.failed(err) // no reply: the connection failed or timed out
	}
	var code int
	var status string
	var fatal error
	if te != nil {
		code, status = refusal(te, x.enhanced)
		switch code {
		case 0:
			fatal = errUnexpectedReply
		case 421:
			fatal = errRelayClosing
			x.noReply = true // as good as a lost connection: nothing was done
		}
	}
	j := e.job
	switch e.step {
	case mail.ErrSMTPReset:
		switch {
		case te == nil:
			x.c.rset = false
		case fatal == nil:
			fatal = errUnexpectedReply
		}
	case mail.ErrSMTPMailFrom:
		if te != nil {
			j.fail(e.step, classify(x.ctx, e.step, code, status))
			x.c.rset = true
			if fatal == nil {
				x.refused = j.err
			}
		}
	case mail.ErrSMTPRcptTo:
		// After a refused MAIL FROM, the pipelined RCPT TO was refused
		// for want of it: keep the first refusal. Of several refused
		// recipients the last one counts, as in go-mail.
		if te != nil && (j.err == nil || j.step == e.step) {
			j.fail(e.step, classify(x.ctx, e.step, code, status))
			x.c.rset = true
		}
	case mail.ErrSMTPData:
		switch {
		case te == nil && j.err != nil:
			return errUnexpectedReply
		case te == nil:
			j.ready = true
		case j.err == nil:
			j.fail(e.step, classify(x.ctx, e.step, code, status))
			x.c.rset = true
		}
	case mail.ErrSMTPDataClose:
		if te == nil {
			j.sent = true
		} else {
			j.fail(e.step, classify(x.ctx, e.step, code, status))
		}
	}
	return fatal
}

// stale reports whether run's error says the connection was dead before
// any message data of the batch went out: it failed or the relay closed
// it (421) at MAIL FROM, RCPT TO, DATA or RSET. Nothing of the messages
// went: they may all go again over a new connection.
func (x *transactions) stale(err error) bool {
	return err != nil && x.noReply && !x.dataOut
}

// finish sets each job's outcome: a sent message's Result, or its error.
// A message whose data had ended when the connection failed is Ambiguous;
// one whose data had started is Temporary, as is one whose data never
// left; after a refused envelope sender the rest get that refusal.
func (x *transactions) finish(jobs []*job) {
	for _, j := range jobs {
		switch {
		case j.sent:
			j.out.Result = channels.Result{ProviderID: j.msg.GetMessageID()}
			continue
		case j.err != nil:
		case j.dotEnd > 0 && x.wire.sent() >= j.dotEnd:
			j.err = classify(x.ctx, mail.ErrSMTPDataClose, 0, "")
		case j.dotEnd > 0:
			j.err = classify(x.ctx, mail.ErrWriteContent, 0, "")
		case x.refused != nil:
			cp := *x.refused
			j.err = &cp
		default:
			j.err = notSent(x.ctx)
			// Nothing of it left before the connection failed: another
			// connection may carry it.
			j.again = x.noReply && x.ctx.Err() == nil
		}
		j.out.Err = j.err
	}
}

// wire hands a batch's bytes to the connection's buffer (go-mail's
// Text.W) and counts them, so that after a failed write it can tell
// whether the end of a message's data reached the connection. It never
// fails a write: after the first error it drops what follows, so that
// the DotWriter always completes and every count is exact; flush returns
// the error.
type wire struct {
	w        *bufio.Writer
	queued   int64 // bytes handed to the wire
	accepted int64 // bytes w took, written or buffered
	err      error
}

func (w *wire) Write(p []byte) (int, error) {
	w.queued += int64(len(p))
	if w.err == nil {
		n, err := w.w.Write(p)
		w.accepted += int64(n)
		w.err = err
	}
	return len(p), nil
}

func (w *wire) flush() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

// sent is how many of the bytes the connection took: a bufio.Writer keeps
// those it failed to write, and w was empty when the wire began.
func (w *wire) sent() int64 { return w.accepted - int64(w.w.Buffered()) }

// dotWriter writes message data as textproto's DotWriter does (a line's
// leading "." doubled, a bare LF written CRLF, ".\r\n" at the end), a
// line at a time instead of a byte at a time.
type dotWriter struct {
	w     *bufio.Writer
	state int // dotBegin, dotBeginLine, dotCR or dotData
}

const (
	dotBegin = iota
	dotBeginLine
	dotCR
	dotData
)

func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if (d.state == dotBegin || d.state == dotBeginLine) && p[0] == '.' {
			_ = d.w.WriteByte('.')
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			_, _ = d.w.Write(p)
			if endsInCR(p, d.state == dotCR) {
				d.state = dotCR
			} else {
				d.state = dotData
			}
			break
		}
		_, _ = d.w.Write(p[:i])
		if !endsInCR(p[:i], d.state == dotCR) {
			_ = d.w.WriteByte('\r')
		}
		_ = d.w.WriteByte('\n')
		d.state, p = dotBeginLine, p[i+1:]
	}
	return n, nil
}

// endsInCR reports whether DotWriter would stand right after a CR at the
// end of seg, a piece of a line, starting after a CR when cr: a CR takes
// the byte after it as is, so of a run of CRs every other one counts.
func endsInCR(seg []byte, cr bool) bool {
	r := 0
	for r < len(seg) && seg[len(seg)-1-r] == '\r' {
		r++
	}
	if r < len(seg) {
		cr = false
	}
	return cr != (r%2 == 1)
}

// Close ends the data with ".\r\n", on a line of its own.
func (d *dotWriter) Close() error {
	switch d.state {
	case dotBegin, dotData:
		_, _ = d.w.WriteString("\r\n")
	case dotCR:
		_ = d.w.WriteByte('\n')
	}
	_, _ = d.w.WriteString(".\r\n")
	return d.w.Flush()
}
