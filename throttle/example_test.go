package throttle_test

import (
	"fmt"
	"time"

	"github.com/missive-dev/missive/throttle"
)

func ExampleCalendar_NextOpen() {
	cal, err := throttle.ParseCalendar("mon-sat 08:00-20:00; holidays 2026-12-25")
	if err != nil {
		panic(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	// Thursday 24 December 2026, 19:30 UTC: 20:30 in Paris, already the
	// 25th in Tokyo.
	now := time.Date(2026, 12, 24, 19, 30, 0, 0, time.UTC)
	fmt.Println(cal.NextOpen(now, paris))
	fmt.Println(cal.NextOpen(now, tokyo))
	// Output:
	// 2026-12-26 08:00:00 +0100 CET
	// 2026-12-26 08:00:00 +0900 JST
}

func ExampleParseCapRules() {
	rules, err := throttle.ParseCapRules("email:marketing:2/7d, sms:1/24h, email:topic=promotions:1/1d")
	if err != nil {
		panic(err)
	}
	for _, r := range rules {
		fmt.Printf("%-28s channel=%s topic=%q marketing-only=%v limit=%d window=%s\n", r, r.Channel, r.Topic, r.MarketingOnly, r.Limit, r.Window)
	}
	_, err = throttle.ParseCapRules("sms:1/24h, email:2/fortnight")
	fmt.Println(err)
	// Output:
	// email:marketing:2/7d         channel=email topic="" marketing-only=true limit=2 window=168h0m0s
	// sms:1/1d                     channel=sms topic="" marketing-only=false limit=1 window=24h0m0s
	// email:topic=promotions:1/1d  channel=email topic="promotions" marketing-only=false limit=1 window=24h0m0s
	// throttle: cap rule 2 "email:2/fortnight": window "fortnight": want a duration like 7d, 24h or 30m
}
