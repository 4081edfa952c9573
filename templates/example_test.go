package templates_test

import (
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/templates"
)

func ExampleCompiled_Render() {
	c, err := templates.Compile(templates.Template{
		ID: "welcome", Version: 1,
		Email: &templates.Email{
			Subject: `Bienvenue {{default "à vous" .Attr.first_name | title}}`,
			HTML:    `<p>Bonjour {{.Attr.first_name}} ({{.Attr.city}}), votre code : <b>{{upper .Attr.code}}</b></p>`,
			Text:    `Bonjour {{.Attr.first_name}}, votre code : {{upper .Attr.code}}`,
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	r, err := c.Render(channels.Email, templates.Data{
		Attr:   map[string]string{"first_name": "léa", "city": "Lyon <Part-Dieu>", "code": "bienvenue10"},
		Locale: "fr",
		Now:    time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC),
	}, templates.RenderOptions{
		Marketing:      true,
		UnsubscribeURL: "https://mail.example.com/u/TOKEN",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Subject)
	fmt.Println(strings.SplitN(r.HTML, "\n", 2)[0])
	lines := strings.Split(strings.TrimSpace(r.Text), "\n")
	fmt.Println(lines[0])
	fmt.Println(lines[len(lines)-1])
	fmt.Println(r.Headers["List-Unsubscribe"])
	fmt.Println(r.Headers["List-Unsubscribe-Post"])

	_, err = c.Render(channels.Email, templates.Data{}, templates.RenderOptions{})
	fmt.Println(err)
	// Output:
	// Bienvenue Léa
	// <p>Bonjour léa (Lyon &lt;Part-Dieu&gt;), votre code : <b>BIENVENUE10</b></p>
	// Bonjour léa, votre code : BIENVENUE10
	// Se désabonner : https://mail.example.com/u/TOKEN
	// <https://mail.example.com/u/TOKEN>
	// List-Unsubscribe=One-Click
	// email.html: line 1: missing variable "first_name"
}

func ExampleSegments() {
	for _, body := range []string{
		"Votre colis arrive demain.",
		"Prix : 10 €",
		strings.Repeat("a", 161),
		"Joyeux anniversaire 🎂",
	} {
		s := templates.Segments(body)
		fmt.Printf("%s %d units, %d part(s)\n", s.Encoding, s.Units, s.Parts)
	}
	// Output:
	// GSM-7 26 units, 1 part(s)
	// GSM-7 12 units, 1 part(s)
	// GSM-7 161 units, 2 part(s)
	// UCS-2 22 units, 1 part(s)
}

func ExampleSigner() {
	s, err := templates.NewSigner(map[string][]byte{"k1": []byte("0123456789abcdef0123456789abcdef")}, "k1")
	if err != nil {
		log.Fatal(err)
	}
	tok, err := s.Sign(templates.Claims{Contact: "c-42", Channel: "email", Topic: "newsletter"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(templates.UnsubscribeURL("https://mail.example.com", tok), "https://mail.example.com/u/"))
	c, err := s.Verify(tok)
	fmt.Println(c.Contact, c.Channel, c.Topic, err)
	_, err = s.Verify(tok[:len(tok)-1])
	fmt.Println(err)
	// Output:
	// true
	// c-42 email newsletter <nil>
	// invalid token
}
