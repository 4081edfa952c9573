package signup

import (
	"strings"

	"github.com/missive-dev/missive/channels"
)

// dotlessDomains are the providers known to deliver "a.b@" to "ab@",
// mapped to the domain they deliver to.
var dotlessDomains = map[string]string{
	"gmail.com":      "gmail.com",
	"googlemail.com": "gmail.com",
}

// Mailbox returns the inbox addr reaches, for limits only (the address
// used and stored stays addr): an email address without its +tag, in
// lower case, and without dots at providers that ignore them. A phone
// number is its own inbox.
func Mailbox(k channels.Kind, addr string) string {
	if k != channels.Email {
		return addr
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := strings.ToLower(addr[:at]), strings.ToLower(addr[at+1:])
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	if d, ok := dotlessDomains[domain]; ok {
		local, domain = strings.ReplaceAll(local, ".", ""), d
	}
	return local + "@" + domain
}
