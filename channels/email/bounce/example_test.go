package bounce_test

import (
	"fmt"
	"strings"

	"github.com/missive-dev/missive/channels/email/bounce"
)

func ExampleParse() {
	const dsn = "From: MAILER-DAEMON@mx.example.org\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example.org\r\n\r\n" +
		"Final-Recipient: rfc822; ada@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n" +
		"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <send-1@missive.example>\r\n\r\n--b--\r\n"
	r, err := bounce.Parse(strings.NewReader(dsn))
	if err != nil {
		fmt.Println(err)
		return
	}
	rc := r.Recipients[0]
	fmt.Println(r.Kind, r.MessageID, rc.Action, rc.Status, rc.Class)
	// Output: dsn send-1@missive.example failed 5.1.1 hard
}

func ExampleLocalVERP() {
	token, ok := bounce.LocalVERP("Bounces+send-1@bounce.missive.example", "bounces")
	fmt.Println(token, ok)
	// Output: send-1 true
}
