package page_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/missive-dev/missive/dispatcher/page"
)

func ExampleNegotiate() {
	fmt.Println(page.Negotiate("en", "fr-FR", "fr"))                 // the switch link
	fmt.Println(page.Negotiate("", "fr-CA", "en-US"))                // the contact's locale
	fmt.Println(page.Negotiate("", "", "de-DE, en;q=0.8, fr;q=0.5")) // the browser
	fmt.Println(page.Negotiate("", "", "de-DE"))                     // nothing of ours
	// Output:
	// en
	// fr
	// en
	// en
}

func ExampleMessage() {
	w := httptest.NewRecorder()
	page.Message(w, http.StatusBadRequest, page.English, page.InvalidUnsubscribeLink)
	fmt.Println(w.Code, w.Header().Get("X-Frame-Options"))
	// Output:
	// 400 DENY
}
