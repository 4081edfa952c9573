package privacy

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

// Register is the record of processing activities (GDPR Art. 30,
// "registre des traitements") of a Missive deployment, built from its
// configuration and its topics. The controller's identity is a
// placeholder: Missive does not know the legal entity behind it.
type Register struct {
	GeneratedAt    time.Time      `json:"generated_at"`
	Controller     Controller     `json:"controller"`
	Purposes       []Purpose      `json:"purposes"`
	DataSubjects   []string       `json:"data_subjects"`
	DataCategories []DataCategory `json:"data_categories"`
	Recipients     []Recipient    `json:"recipients"`
	Transfers      string         `json:"transfers"`
	Retention      []Retention    `json:"retention"`
	Security       []string       `json:"security"`
}

// Controller identifies the controller; everything but Name is to be
// completed by hand.
type Controller struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	DPO     string `json:"dpo"`
}

// Purpose is one topic of communication and the legal basis it rests on.
type Purpose struct {
	Topic       string               `json:"topic"`
	Name        string               `json:"name"`
	Description string               `json:"description,omitempty"`
	Kind        dispatcher.TopicKind `json:"kind"`
	LegalBasis  string               `json:"legal_basis"`
	Article     string               `json:"article"`
}

// DataCategory is a category of personal data held on contacts.
type DataCategory struct {
	Category string   `json:"category"`
	Data     []string `json:"data"`
}

// Recipient is who receives personal data, and in which role.
type Recipient struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Retention is how long one kind of record is kept.
type Retention struct {
	Data   string `json:"data"`
	Period string `json:"period"`
}

// Todo marks what only the controller can fill in.
const Todo = "to be completed by the controller"

// Register builds the record of processing from the configuration and
// the topics stored now.
func (d *Privacy) Register(ctx context.Context) (*Register, error) {
	topics, err := d.Store.Topics(ctx)
	if err != nil {
		return nil, fmt.Errorf("register: topics: %w", err)
	}
	reg := &Register{
		GeneratedAt:  d.cfg.Now().UTC(),
		Controller:   Controller{Name: d.cfg.SenderName, Address: Todo, DPO: Todo},
		Purposes:     []Purpose{},
		DataSubjects: []string{"customers and prospects of the controller who receive its emails or SMS"},
		DataCategories: []DataCategory{
			{"identifiers", []string{"contact id (opaque, set by upstream systems)"}},
			{"contact data", []string{"email address", "phone number"}},
			{"preferences", []string{"locale", "time zone", "the pace the recipient chose: a pause, how often per topic, preferred days and hours"}},
			{"attributes", []string{"free attributes and tags set by upstream systems"}},
			{"consent records", []string{"consent and withdrawal per channel and topic, with source, time and evidence"}},
			{"delivery records", []string{"sends, their outcome (delivered, bounced, failed) and feedback events"}},
			{"per-send data", []string{"what upstream systems trigger a single send with for its message (an order number, a carrier), kept with the send record"}},
		},
		Transfers: "none made by Missive itself; depends on where the processors process data: " + Todo,
		Retention: []Retention{
			{"send records and feedback events", days(d.cfg.SendTTL)},
			{"consent ledger", "kept as proof of consent (GDPR Art. 7(1)); pseudonymous after erasure"},
			{"suppression list (keyed hashes of addresses)", "kept at least 3 years (CNIL), so that an opposition is honoured after erasure"},
			{"inactive contacts", inactiveTerm(d.cfg.InactiveAfter)},
			{"audit log", "the last 1,000,000 changes"},
		},
		Security: []string{
			"keyed hashes (HMAC-SHA-256) for lookups by address",
			"encryption at rest of contact data and per-send data with AES-256-GCM under a keyring with rotation",
			"TLS to the providers when configured",
			"API keys with scopes, and an audit log of changes made through the API",
			"no open or click tracking by default",
			"logs, errors and task payloads never contain an address, a phone number or a token",
		},
	}
	for _, t := range topics {
		p := Purpose{Topic: t.ID, Name: t.Name, Description: t.Description, Kind: t.Kind}
		if t.Kind == dispatcher.Transactional {
			p.LegalBasis, p.Article = "contract", "Art. 6(1)(b)"
		} else {
			p.LegalBasis, p.Article = "consent", "Art. 6(1)(a)"
		}
		reg.Purposes = append(reg.Purposes, p)
	}
	for _, p := range d.cfg.Processors {
		reg.Recipients = append(reg.Recipients, Recipient{Name: p, Role: "processor"})
	}
	// Outbound webhooks registered with include_address receive addresses
	// and numbers: their hosts are recipients of personal data.
	eps, err := d.cfg.Store.Webhooks(ctx)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, ep := range eps {
		if u, err := url.Parse(ep.URL); err == nil && ep.IncludeAddress && !slices.Contains(hosts, u.Host) {
			hosts = append(hosts, u.Host)
		}
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		reg.Recipients = append(reg.Recipients, Recipient{Name: "outbound webhook (" + h + ")", Role: "recipient"})
	}
	if len(reg.Recipients) == 0 {
		reg.Recipients = []Recipient{{Name: "no processor configured", Role: "none"}}
	}
	return reg, nil
}

// days writes a retention period in days, or hours when shorter.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if d == 24*time.Hour {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return fmt.Sprintf("%g hours", d.Hours())
}

// inactiveTerm writes how long PurgeInactive keeps an inactive contact.
func inactiveTerm(d time.Duration) string {
	switch {
	case d < 0:
		return "until erased: no purge of inactive contacts is configured"
	case d == DefaultInactiveAfter:
		return "3 years from collection or last contact (CNIL)"
	}
	return days(d) + " from collection or last contact"
}

// Markdown writes the register as a Markdown document.
func (reg *Register) Markdown() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	line("# Record of processing activities (GDPR Art. 30)")
	line("")
	line("Generated by Missive on %s from its configuration and topics.", reg.GeneratedAt.Format(time.RFC3339))
	line("")
	line("## Controller")
	line("")
	line("- Name: %s", reg.Controller.Name)
	line("- Address: %s", reg.Controller.Address)
	line("- Data protection officer: %s", reg.Controller.DPO)
	line("")
	line("## Purposes")
	line("")
	if len(reg.Purposes) == 0 {
		line("No topic is defined yet.")
	} else {
		line("| topic | name | kind | legal basis | description |")
		line("|---|---|---|---|---|")
		for _, p := range reg.Purposes {
			line("| %s | %s | %s | %s, %s | %s |", cell(p.Topic), cell(p.Name), p.Kind, p.LegalBasis, p.Article, cell(p.Description))
		}
	}
	line("")
	line("## Data subjects")
	line("")
	for _, s := range reg.DataSubjects {
		line("- %s", s)
	}
	line("")
	line("## Categories of data")
	line("")
	for _, c := range reg.DataCategories {
		line("- %s: %s", c.Category, strings.Join(c.Data, "; "))
	}
	line("")
	line("## Recipients")
	line("")
	for _, r := range reg.Recipients {
		line("- %s (%s)", cell(r.Name), r.Role)
	}
	line("")
	line("## Transfers outside the EU")
	line("")
	line("%s", reg.Transfers)
	line("")
	line("## Retention")
	line("")
	line("| data | period |")
	line("|---|---|")
	for _, r := range reg.Retention {
		line("| %s | %s |", r.Data, r.Period)
	}
	line("")
	line("## Security measures")
	line("")
	for _, s := range reg.Security {
		line("- %s", s)
	}
	return b.String()
}
