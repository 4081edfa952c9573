package sms_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
)

func ExampleSender_Send() {
	// A local Twilio double; in production leave APIURL empty.
	srv := twiliotest.NewServer(nil)
	defer srv.Close()
	srv.Fail("+33600000000", 400, sms.CodeOptedOut)

	s, err := sms.New(sms.Config{
		AccountSID: twiliotest.AccountSID,
		AuthToken:  twiliotest.AuthToken,
		From:       "+15005550006",
		APIURL:     srv.URL(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	for _, to := range []channels.Address{"+33612345678", "+33600000000"} {
		_, err := s.Send(context.Background(), channels.Message{To: to, Body: "Hello. STOP au 36xxx"})
		var apiErr *sms.APIError
		switch {
		case err == nil:
			fmt.Println("queued")
		case errors.As(err, &apiErr) && apiErr.OptedOut():
			fmt.Println(channels.KindOf(err), "- suppress:", err)
		default:
			fmt.Println(channels.KindOf(err), err)
		}
	}
	// Output:
	// queued
	// permanent - suppress: permanent failure (21610): twilio: HTTP 400, error 21610 (recipient opted out (STOP))
}
