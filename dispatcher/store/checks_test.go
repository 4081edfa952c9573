package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

// decodeCurrent reads what encoding/json reads of a current consent or
// preference, whatever the bytes: those json.Marshal wrote on its own
// path, the rest through encoding/json.
func FuzzDecodeCurrent(f *testing.F) {
	at := time.Date(2026, 3, 2, 10, 4, 5, 123456789, time.FixedZone("", 3600))
	for _, c := range []ConsentCurrent{
		{State: dispatcher.Granted, At: at, Source: "api"},
		{State: dispatcher.Withdrawn, At: at.UTC(), Source: "one-click"},
		{At: at, Source: "preference-page", Value: "2026-04-01"},
		{At: at, Source: "preference-page", Value: "weekly"},
		{State: "odd", Source: "imp\u00e9rt \"quoted\"", Value: "<b>&</b>"},
		{},
	} {
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, ``, `{`, `null`, `[]`, `{"state":"granted"}`, `{"State":"granted"}`, `{"state":null}`,
		`{"state":"granted","at":"yesterday"}`, `{"state":"granted","at":"2026-03-02T10:04:05Z","state":"withdrawn"}`,
		`{"state":"granted"} `, ` {"state":"granted"}`, `{"state" : "granted"}`, `{"state":"gr\u0061nted"}`,
		`{"state":"granted","extra":1}`, `{"value":"a\tb"}`, `{"state":"granted",}`, `{"at":"2026-03-02T24:00:00Z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		state, value, ok := decodeCurrent(b)
		var cur ConsentCurrent
		err := json.Unmarshal(b, &cur)
		if ok != (err == nil) {
			t.Fatalf("%q: ok %v, encoding/json says %v", b, ok, err)
		}
		if ok && (state != cur.State || value != cur.Value) {
			t.Fatalf("%q: state %q value %q, encoding/json reads %q %q", b, state, value, cur.State, cur.Value)
		}
		if !ok && (state != "" || value != "") {
			t.Fatalf("%q: state %q value %q on failure", b, state, value)
		}
	})
}

// What json.Marshal wrote is read without encoding/json.
func TestScanCurrentReadsWhatMarshalWrites(t *testing.T) {
	t.Parallel()
	for _, c := range []ConsentCurrent{
		{State: dispatcher.Granted, At: time.Now(), Source: "api"},
		{At: time.Now().UTC(), Source: "preference-page", Value: "monthly"},
	} {
		b, _ := json.Marshal(c)
		state, value, ok := scanCurrent(b)
		if !ok || state != c.State || value != c.Value {
			t.Errorf("%s: %q %q %v", b, state, value, ok)
		}
	}
}

func BenchmarkDecodeCurrent(b *testing.B) {
	v, _ := json.Marshal(ConsentCurrent{State: dispatcher.Granted, At: time.Now(), Source: "import"})
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodeCurrent(v)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cur ConsentCurrent
			_ = json.Unmarshal(v, &cur)
		}
	})
}
