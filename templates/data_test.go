package templates

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
)

// TestRenderSendData renders a send's data, nested, in email and SMS,
// and a missing key the way a missing attribute is: an error, or empty
// under default.
func TestRenderSendData(t *testing.T) {
	tpl := Template{ID: "order", Version: 1,
		Email: &Email{Subject: `Order {{.Data.order.number}}`, HTML: `<p>{{.Data.order.number}}</p>`, Text: `Total {{.Data.order.total}} {{default "no note" .Data.order.note}} {{default "-" $.Data.missing.deep}}`},
		SMS:   &SMS{Body: `Order {{.Data.order.number}} ships {{index .Data "carrier"}}`}}
	c, err := Compile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"order":{"number":"A-17","total":42.50},"carrier":"La Poste"}`))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		t.Fatal(err)
	}
	d := Data{Contact: ContactData{ID: "c1"}, Data: data, Now: time.Unix(0, 0)}
	r, err := c.Render(channels.Email, d, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "Order A-17" || r.Text != "Total 42.50 no note -" || r.HTML != "<p>A-17</p>" {
		t.Fatalf("email: subject %q text %q html %q", r.Subject, r.Text, r.HTML)
	}
	r, err = c.Render(channels.SMS, d, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.SMS != "Order A-17 ships La Poste" {
		t.Fatalf("sms: %q", r.SMS)
	}
	// Without data, the key is missing, as a missing attribute is.
	_, err = c.Render(channels.SMS, Data{Contact: ContactData{ID: "c1"}}, RenderOptions{})
	var mv *MissingVariableError
	if !errors.As(err, &mv) {
		t.Fatalf("render without data: %v, want a *MissingVariableError", err)
	}
}
