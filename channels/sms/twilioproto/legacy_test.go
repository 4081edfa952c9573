package twilioproto_test

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/missive-dev/missive/channels"
)

// Frozen copies of the three places that held Twilio's codes before this
// package (commit 2a90c43), so that tests prove the one table gives each of
// their callers the answers it had. Do not "fix" them: they are the
// reference.

type legacyInfo struct{ temporary, sender bool }

// legacyCodes is channels/sms's table, without the texts.
var legacyCodes = map[int]legacyInfo{
	20003: {sender: true}, 20429: {temporary: true}, 21212: {sender: true}, 21408: {sender: true},
	21603: {sender: true}, 21606: {sender: true}, 30001: {temporary: true}, 30003: {temporary: true},
}

// legacyClassify is channels/sms.Classify.
func legacyClassify(httpStatus, code int) channels.ErrorKind {
	codes := legacyCodes
	switch {
	case httpStatus == 429 || codes[code].temporary:
		return channels.Temporary
	case codes[code].sender || httpStatus == 401:
		return channels.Sender
	case httpStatus >= 500:
		return channels.Temporary
	case httpStatus >= 400:
		return channels.Permanent
	case httpStatus == 0 && code != 0:
		return channels.Permanent
	}
	return channels.Temporary
}

// legacyRecipient is channels/sms.APIError.Recipient.
func legacyRecipient(code int) bool {
	switch code {
	case 21211, 21610, 21614, 30005, 30006:
		return true
	}
	return false
}

// legacyRefusalKind is dispatcher.refusalKind for channels.SMS: what the
// dispatcher records for a permanent refusal whose *channels.Error has
// Code code.
func legacyRefusalKind(code string) channels.FeedbackKind {
	switch code {
	case "21610":
		return channels.OptedOut
	case "21211", "21614", "30005", "30006":
		return channels.HardBounce
	}
	return ""
}

// legacyStatusEvent is dispatcher.twilioStatusEvent.
func legacyStatusEvent(status, code string) (channels.FeedbackKind, bool) {
	switch status {
	case "delivered", "read":
		return channels.Delivered, true
	case "undelivered", "failed":
		switch code {
		case "30005", "30006", "21211", "21614":
			return channels.HardBounce, true
		case "21610":
			return channels.OptedOut, true
		case "30003":
			return channels.SoftBounce, true
		}
		return channels.Undelivered, true
	}
	return "", false
}

var (
	legacySIDPattern    = regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`)
	legacyStatusPattern = regexp.MustCompile(`^[a-z_]{1,32}$`)
	legacyCodePattern   = regexp.MustCompile(`^[0-9]{1,6}$`)
)

// legacyStatusResult is what dispatcher.twilioStatus decided from the form
// before it touched Redis.
type legacyStatusResult struct {
	BadField string // the field named in a 400; "" when the form was taken
	SID      string
	Kind     channels.FeedbackKind // "" when nothing was recorded
	Code     string
	To       string // before NormalizePhone, which stays the dispatcher's
}

// legacyStatus is dispatcher.twilioStatus's reading of the form.
func legacyStatus(f url.Values) legacyStatusResult {
	sid := f.Get("MessageSid")
	if !legacySIDPattern.MatchString(sid) {
		return legacyStatusResult{BadField: "MessageSid"}
	}
	status := f.Get("MessageStatus")
	if !legacyStatusPattern.MatchString(status) {
		return legacyStatusResult{BadField: "MessageStatus"}
	}
	code := f.Get("ErrorCode")
	if code != "" {
		n, err := strconv.Atoi(code)
		if !legacyCodePattern.MatchString(code) || err != nil {
			return legacyStatusResult{BadField: "ErrorCode"}
		}
		code = strconv.Itoa(n)
		if n == 0 {
			code = ""
		}
	}
	kind, ok := legacyStatusEvent(status, code)
	if !ok {
		return legacyStatusResult{SID: sid}
	}
	if kind == channels.Delivered {
		code = ""
	}
	return legacyStatusResult{SID: sid, Kind: kind, Code: code, To: f.Get("To")}
}

// legacyKeywords and legacyParseKeyword are dispatcher.parseKeyword, with
// 0 none, 1 stop, 2 start, 3 help.
var legacyKeywords = map[string]int{
	"STOP": 1, "STOPALL": 1, "UNSUBSCRIBE": 1, "CANCEL": 1,
	"END": 1, "QUIT": 1, "ARRET": 1, "ARRÊT": 1,
	"START": 2, "YES": 2, "UNSTOP": 2,
	"HELP": 3, "INFO": 3,
}

func legacyParseKeyword(body string) int {
	if len(body) > 32 {
		return 0
	}
	w := strings.TrimRightFunc(strings.TrimSpace(body), func(r rune) bool {
		return unicode.IsPunct(r) || unicode.IsSpace(r)
	})
	return legacyKeywords[strings.ToUpper(w)]
}
