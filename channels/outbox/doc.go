// Package outbox is the development sink: a channels.Channel that writes
// messages to a folder instead of sending them, for both channels.
//
// An email becomes <dir>/<id>.eml, the exact bytes SMTP would carry (built
// with email.Build), openable in any mail client. An SMS becomes one JSON
// line in <dir>/sms.jsonl:
//
//	{"id":"run-7.contact-42.sms","to":"+33612345678","from":"Missive","body":"...","at":"2026-03-01T10:00:00Z"}
//
// With WithDKIM, each .eml starts with a DKIM-Signature field made as
// email.Sender makes it, so that signed mail can be checked offline.
//
// Sends are idempotent per id: an .eml is replaced, an SMS line is written
// once per process.
//
//	box, err := outbox.New("./outbox", outbox.WithEmailDefaults(email.Defaults{From: "news@example.com"}))
//	if err != nil {
//		return err
//	}
//	res, err := box.Send(ctx, msg) // res.ProviderID is the file name
//
// The files hold personal data: the directory is created with mode 0700 and
// the files with 0600. Use it for development and demos only.
package outbox
