// Package templates turns a Missive template and one recipient into the
// text of one message: subject, HTML and text parts for email, a body for
// SMS, and the headers and footers that marketing obligations require. It
// also counts SMS segments and signs the tokens of unsubscribe and
// preference links.
//
// The package is pure: no Redis, no network, no files, no clock but the
// Data.Now the caller passes. That keeps it fast and fuzzable.
//
// # Templates
//
// Templates use Go template syntax in a restricted form. The HTML part goes
// through html/template, so every value is escaped for where it lands; the
// other parts use text/template. range, template, define and block are
// rejected, so a template has no loops and no recursion and its rendering
// time is bounded by its size. Only a small set of functions is allowed
// (upper, lower, title, trim, default, truncate, date, the comparison and
// logic builtins, len, index, print, printf and the escapers); call and
// the rest are rejected. Sources are limited to MaxSourceSize and rendered
// parts to MaxOutputSize. A reference to a missing attribute is an error
// that names it:
//
//	email.subject: line 1: missing variable "first_nme"
//
// A single send may carry data of its own (Data.Data, a JSON object),
// reached key by key: {{.Data.order.number}}. A missing key is an error
// the same way, and default sees it as empty at any depth:
// {{default "" .Data.order.note}}.
//
// # Marketing obligations
//
// With RenderOptions.Marketing, an email gets an unsubscribe footer in
// French or English (unless the HTML already links the unsubscribe URL)
// and the RFC 8058 headers
//
//	List-Unsubscribe: <https://mail.example.com/u/TOKEN>
//	List-Unsubscribe-Post: List-Unsubscribe=One-Click
//
// and an SMS gets a STOP line unless it already says STOP.
//
// # Example
//
//	c, err := templates.Compile(templates.Template{
//		Email: &templates.Email{
//			Subject: `Bonjour {{default "à vous" .Attr.first_name | title}}`,
//			HTML:    `<p>Votre code : {{upper .Attr.code}}</p>`,
//		},
//	})
//	if err != nil {
//		return err // a *FieldError: "email.html: line 1: ..."
//	}
//	tok, err := signer.Sign(templates.Claims{Contact: id, Channel: "email", Topic: "promotions", Send: sendID})
//	r, err := c.Render(channels.Email, data, templates.RenderOptions{
//		Marketing:      true,
//		UnsubscribeURL: templates.UnsubscribeURL(publicURL, tok),
//	})
//	msg := r.Message(sendID, to)
package templates
