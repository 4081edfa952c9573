package esptest

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SNSNotification wraps an SES notification in an SNS envelope with id,
// published at at; SignSNS signs it.
func SNSNotification(id, message string, at time.Time) map[string]string {
	return map[string]string{
		"Type": "Notification", "MessageId": id, "TopicArn": SESTopic,
		"Message": message, "Timestamp": at.UTC().Format("2006-01-02T15:04:05.000Z"),
		"UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
	}
}

// SESMessage is an SES notification of kind (Bounce, SoftBounce,
// Complaint or Delivery) of the message with Message-ID mid to addrs.
func SESMessage(kind, mid string, addrs ...string) string {
	mail := map[string]any{"messageId": "0102018f-ses-own", "commonHeaders": map[string]any{"messageId": mid}}
	n := map[string]any{"notificationType": kind, "mail": mail}
	switch kind {
	case "Bounce", "SoftBounce":
		typ := "Permanent"
		if kind == "SoftBounce" {
			n["notificationType"], typ = "Bounce", "Transient"
		}
		var rs []any
		for _, a := range addrs {
			rs = append(rs, map[string]string{"emailAddress": a, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"})
		}
		n["bounce"] = map[string]any{"bounceType": typ, "bounceSubType": "General", "bouncedRecipients": rs}
	case "Complaint":
		var rs []any
		for _, a := range addrs {
			rs = append(rs, map[string]string{"emailAddress": a})
		}
		n["complaint"] = map[string]any{"complainedRecipients": rs, "complaintFeedbackType": "abuse"}
	case "Delivery":
		n["delivery"] = map[string]any{"recipients": addrs, "smtpResponse": "250 ok"}
	}
	b, _ := json.Marshal(n)
	return string(b)
}

// SendGridEvent is one SendGrid event of kind (as SESMessage names them:
// Bounce, SoftBounce, Complaint, Delivery) about the message mid to
// address, for SendGridEvents.
func SendGridEvent(kind, mid, address string) map[string]any {
	e := map[string]any{"email": address, "smtp-id": mid, "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001"}
	switch kind {
	case "Bounce":
		e["event"], e["type"], e["status"], e["reason"] = "bounce", "bounce", "5.1.1", "550 5.1.1 user unknown"
	case "SoftBounce":
		e["event"], e["type"], e["status"] = "bounce", "blocked", "4.7.1"
	case "Complaint":
		e["event"] = "spamreport"
	case "Delivery":
		e["event"] = "delivered"
	}
	return e
}

// SendGridEvents is a SendGrid body of evs, stamped at at and numbered
// idPrefix+"0", idPrefix+"1"...
func SendGridEvents(t testing.TB, idPrefix string, at time.Time, evs ...map[string]any) []byte {
	t.Helper()
	for i, e := range evs {
		e["sg_event_id"] = idPrefix + strconv.Itoa(i)
		e["timestamp"] = at.Unix()
	}
	return Marshal(t, evs)
}

// MailgunEventData is the event-data of a Mailgun event with id, at at,
// about the message with Message-ID mid to recipient; a severity
// (permanent or temporary) adds a delivery status.
func MailgunEventData(id, event, severity, mid, recipient string, at time.Time) map[string]any {
	e := map[string]any{"id": id, "event": event, "recipient": recipient, "timestamp": float64(at.Unix()),
		"message": map[string]any{"headers": map[string]any{"message-id": strings.Trim(mid, "<>")}}}
	if severity != "" {
		e["severity"] = severity
		e["delivery-status"] = map[string]any{"code": 550, "message": "5.1.1 The email account does not exist", "description": ""}
	}
	return e
}

// PostmarkMessageID is Postmark's own id of the message of PostmarkRecord.
const PostmarkMessageID = "883953f4-6105-42a2-a16a-77a8eac79483"

// PostmarkRecord is a Postmark webhook body of recordType (Delivery,
// Bounce, SpamComplaint) and bounce type typ, with record id, about the
// message with Message-ID mid ("" for none) to address.
func PostmarkRecord(t testing.TB, id int64, recordType, typ, mid, address string) []byte {
	t.Helper()
	e := map[string]any{"RecordType": recordType, "MessageID": PostmarkMessageID, "ServerID": 23, "MessageStream": "outbound"}
	switch recordType {
	case "Delivery":
		e["Recipient"] = address
	default:
		e["ID"], e["Type"], e["Email"], e["Details"] = id, typ, address, "smtp;550 5.1.1 The email account that you tried to reach does not exist"
	}
	if mid != "" {
		e["Headers"] = []map[string]string{{"Name": "Message-ID", "Value": mid}}
	}
	return Marshal(t, e)
}

// FuzzSeeds are SES notifications, the bodies of every provider and odd
// JSON: the seeds of every fuzzer of the webhooks, each of which reads
// them in its own place (a body, a notification, event data).
func FuzzSeeds(t testing.TB) []string {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []string{
		`{}`, `[]`, `null`, `"x"`, `{"a":`, "\xff\xfe", `{"mail":{"headers":[{"name":"Message-ID","value":"<a~b@c>"}]}}`,
		SESMessage("Bounce", "<run~0123@example.com>", "c1@example.com"), SESMessage("Complaint", "", "c1@example.com"),
		SESMessage("Delivery", "<m-AAAA@x>", "c1@example.com"), SESMessage("SoftBounce", "", "a\r\n@example.com"),
		`{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":5}]}}`,
		`{"notificationType":"Bounce","bounce":{"bouncedRecipients":[{"emailAddress":"c1@example.com","status":"5.1.1.1.1"}]}}`,
		string(SendGridEvents(t, "ev-", at, map[string]any{"event": "bounce", "type": "bounce", "email": "c1@example.com", "smtp-id": "<a~b@c>", "status": "5.1.1"})),
		`[{"event":"dropped","reason":"Bounced Address","email":"c1@example.com"},{"event":"dropped","reason":"Spam Reporting Address","email":"c1@example.com"}]`,
		`[{"event":"delivered","email":7},{"event":["x"]},1,"s",null]`,
		`[{"event":"spamreport","email":"c1@example.com","sg_event_id":"` + strings.Repeat("e", 600) + `"}]`,
		`{"event":"failed","severity":"permanent","recipient":"c1@example.com","delivery-status":{"code":550}}`,
		`{"event":"failed","severity":"temporary","recipient":"c1@example.com","delivery-status":{"code":"x","enhanced-code":"4.2.2"}}`,
		`{"event":"complained","recipient":"c1@example.com","message":{"headers":{"message-id":"a~b@c"}}}`,
		`{"event":"delivered","message":{"headers":{"message-id":5}}}`,
		string(PostmarkRecord(t, 4323372036854775807, "Bounce", "HardBounce", "<a~b@c>", "c1@example.com")),
		string(PostmarkRecord(t, 4323372036854775807, "Bounce", "Transient", "", "c1@example.com")),
		string(PostmarkRecord(t, 4323372036854775807, "SpamComplaint", "SpamComplaint", "", "c1@example.com")),
		string(PostmarkRecord(t, 4323372036854775807, "Delivery", "", "<a~b@c>", "c1@example.com")),
		`{"RecordType":"Bounce","ID":"x","Type":"HardBounce","Email":"c1@example.com","Metadata":{"Message-ID":1}}`,
		`{"RecordType":"Bounce","ID":{"a":1},"Type":"HardBounce","Email":"c1@example.com","Headers":[{"Name":"Message-ID","Value":"<a~b@c>"}]}`,
		`{"RecordType":"Delivery","Recipient":"c1@example.com","Metadata":{"message-id":"<a~b@c>","MESSAGE-ID":"<c~d@e>"}}`,
	}
}
