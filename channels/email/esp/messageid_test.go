package esp_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels/email/esp"
)

func TestMessageIDLocal(t *testing.T) {
	for id, want := range map[string]string{
		"run-1~0123456789abcdef01234567": "run-1~0123456789abcdef01234567",
		"a.b~c":                          "a.b~c",
		"!#$%&'*+-/=?^_`{|}~.x":          "!#$%&'*+-/=?^_`{|}~.x",
		// Not dot-atoms: base64url after "m-".
		"run 1:c<2>":   "m-cnVuIDE6YzwyPg",
		".run~x":       "m-LnJ1bn54",
		"run~x.":       "m-" + base64.RawURLEncoding.EncodeToString([]byte("run~x.")),
		"run..1~x":     "m-" + base64.RawURLEncoding.EncodeToString([]byte("run..1~x")),
		"été~x":        "m-" + base64.RawURLEncoding.EncodeToString([]byte("été~x")),
		"a@b~x":        "m-" + base64.RawURLEncoding.EncodeToString([]byte("a@b~x")),
		"":             "m-",
		"run~x\r\nBcc": "m-" + base64.RawURLEncoding.EncodeToString([]byte("run~x\r\nBcc")),
	} {
		if got := esp.MessageIDLocal(id); got != want {
			t.Errorf("MessageIDLocal(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestSendIDFromMessageID(t *testing.T) {
	id := "run-1~0123456789abcdef01234567"
	odd := "api-orders-x v1~0123"
	type result struct {
		ID string
		OK bool
	}
	for in, want := range map[string]result{
		"<" + id + "@example.com>":   {id, true},
		id + "@mg.example.com":       {id, true},
		" <" + id + "@example.com> ": {id, true},
		"<m-" + base64.RawURLEncoding.EncodeToString([]byte(odd)) + "@example.com>": {odd, true},
		"<m-" + base64.RawURLEncoding.EncodeToString([]byte("a~b\r\n")) + "@x>":     {},
		"<m-" + base64.RawURLEncoding.EncodeToString([]byte("~b")) + "@x>":          {},
		"<m-" + base64.RawURLEncoding.EncodeToString([]byte("a~")) + "@x>":          {},
		"<m-" + base64.RawURLEncoding.EncodeToString([]byte("ab")) + "@x>":          {},
		"<m-!!~x@x>":                          {"m-!!~x", true}, // not base64: read as it stands
		"<a\x00~b@x>":                         {},
		"<14c5d75ce93.dfd.64b469@ismtpd-555>": {},
		"<" + id + ">":                        {},
		"":                                    {},
		"<@example.com>":                      {},
		"<" + strings.Repeat("a", 500) + "~b@example.com>": {},
		"<" + strings.Repeat("a", 490) + "~b@example.com>": {strings.Repeat("a", 490) + "~b", true},
	} {
		got, ok := esp.SendIDFromMessageID(in)
		if diff := cmp.Diff(want, result{got, ok}); diff != "" {
			t.Errorf("SendIDFromMessageID(%.60q) (-want +got):\n%s", in, diff)
		}
	}
}

// Every send id reads back from the Message-ID written for it.
func TestMessageIDRoundTrip(t *testing.T) {
	for _, id := range []string{
		"run-1~0123456789abcdef01234567", "api-orders-x v1~0123", "m-x~y", "m-YWJj~1", "r@n~h", "<r>~h", "r~h~h", "é~ü", "r.~h",
	} {
		mid := "<" + esp.MessageIDLocal(id) + "@example.com>"
		if got, ok := esp.SendIDFromMessageID(mid); got != id || !ok {
			t.Errorf("%q: Message-ID %q reads %q %v", id, mid, got, ok)
		}
	}
}

func ExampleMessageIDLocal() {
	fmt.Println(esp.MessageIDLocal("run-1~0123456789abcdef01234567"))
	fmt.Println(esp.MessageIDLocal("orders v1~0123"))
	// Output:
	// run-1~0123456789abcdef01234567
	// m-b3JkZXJzIHYxfjAxMjM
}

func ExampleSendIDFromMessageID() {
	fmt.Println(esp.SendIDFromMessageID("<m-b3JkZXJzIHYxfjAxMjM@mail.example.com>"))
	fmt.Println(esp.SendIDFromMessageID("<14c5d75ce93.dfd.64b469@ismtpd-555>"))
	// Output:
	// orders v1~0123 true
	//  false
}
