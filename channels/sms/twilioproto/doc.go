// Package twilioproto is Twilio's protocol without its SDK: what Missive
// knows of Twilio's error codes, status callbacks, inbound messages, TwiML
// replies and webhook signatures, as pure functions over the standard
// library and package channels. It does not import twilio-go, so that the
// dispatcher, which serves Twilio's webhooks, can use it; channels/sms,
// which sends through twilio-go, reads the same table.
//
// One table says what each error code means (Lookup): how a send refused
// with it may be handled (channels.ErrorKind) and what a message that failed
// with it tells of the recipient (channels.FeedbackKind). Refusal applies
// it to a send's answer, ParseStatus to a status callback.
//
// Nothing here logs, and no error quotes a field's value: the forms carry
// phone numbers and message bodies.
//
// A status callback handler, once the signature is checked
// (ValidSignature):
//
//	cb, err := twilioproto.ParseStatus(r.PostForm)
//	var fe *twilioproto.FieldError
//	switch {
//	case errors.As(err, &fe):
//		http.Error(w, fe.Error(), http.StatusBadRequest) // names the field only
//		return
//	case cb.Feedback.Kind == "":
//		twilioproto.WriteTwiML(w, "") // nothing to record
//		return
//	}
//	fb := cb.Feedback
//	fb.Send = sendForProvider(cb.MessageSID)
//	record(fb)
//	twilioproto.WriteTwiML(w, "")
//
// An inbound message handler answers a keyword with a reply:
//
//	in, err := twilioproto.ParseInbound(r.PostForm)
//	...
//	switch in.Keyword {
//	case twilioproto.KeywordStop:
//		suppress(in.From)
//		twilioproto.WriteTwiML(w, "You will get no more texts. Reply START to come back.")
//	case twilioproto.KeywordNone:
//		twilioproto.WriteTwiML(w, "")
//	}
package twilioproto
