package templates

import (
	"testing"

	"github.com/missive-dev/missive/channels"
)

// go test -run=^$ -bench=. -benchmem ./templates
func BenchmarkRenderEmail(b *testing.B) {
	c := mustCompile(b, marketingEmail)
	r, err := c.Render(channels.Email, marketingData, marketingOptions)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(r.HTML) + len(r.Text) + len(r.Subject)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Render(channels.Email, marketingData, marketingOptions); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderSMS(b *testing.B) {
	c := mustCompile(b, marketingEmail)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Render(channels.SMS, marketingData, RenderOptions{Marketing: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(marketingEmail); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newTestSigner(b, map[string][]byte{"k1": testKey(1)}, "k1")
	tok, err := s.Sign(testClaims)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s := newTestSigner(b, map[string][]byte{"k1": testKey(1)}, "k1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(testClaims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSegments(b *testing.B) {
	body := "Léa, -20% sur le printemps avec le code PRINTEMPS25 jusqu'au 14/03 : https://ex.co/p\nSTOP: répondez STOP pour ne plus recevoir de SMS"
	for b.Loop() {
		Segments(body)
	}
}
