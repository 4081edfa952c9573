package dispatcher

import (
	"log/slog"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/nyaruka/phonenumbers"
)

// Contact is a recipient as upstream systems know it. Its LogValue shows the
// id only.
type Contact struct {
	// ID is the upstream system's opaque id.
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
	// Phone is in E.164 form (+33612345678).
	Phone string `json:"phone,omitempty"`
	// Timezone is an IANA name. When empty at upsert it is derived from the
	// phone's country, else the configured default.
	Timezone   string            `json:"timezone,omitempty"`
	Locale     string            `json:"locale,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// ContactFields are the fields of a contact a client writes, in the API's
// upsert and in a bulk import: all but the id, which names the contact,
// and the times, which are Missive's.
type ContactFields struct {
	Email      string            `json:"email,omitempty"`
	Phone      string            `json:"phone,omitempty"`
	Timezone   string            `json:"timezone,omitempty"`
	Locale     string            `json:"locale,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
}

// Contact returns the contact id with the fields f.
func (f ContactFields) Contact(id string) Contact {
	return Contact{ID: id, Email: f.Email, Phone: f.Phone, Timezone: f.Timezone, Locale: f.Locale,
		Attributes: f.Attributes, Tags: f.Tags}
}

// Fields returns the fields of c a client writes.
func (c *Contact) Fields() ContactFields {
	return ContactFields{Email: c.Email, Phone: c.Phone, Timezone: c.Timezone, Locale: c.Locale,
		Attributes: c.Attributes, Tags: c.Tags}
}

// LogValue implements slog.LogValuer: only the id is ever logged.
func (c Contact) LogValue() slog.Value { return slog.StringValue("contact:" + c.ID) }

// Address returns the contact's address on channel k ("" if none).
func (c *Contact) Address(k channels.Kind) string {
	switch k {
	case channels.Email:
		return c.Email
	case channels.SMS:
		return c.Phone
	}
	return ""
}

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$`)
	NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	localeRe    = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
)

const (
	maxAttributes   = 64
	maxAttrValueLen = 1024
	maxTags         = 64
)

// ValidID reports whether s may be used as a record id: no braces (they are
// Redis Cluster hash tags), no spaces, 128 bytes at most.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Normalize validates c, normalises its fields in place and fills the time
// zone. Errors name the field and never echo the value.
func (c *Contact) Normalize(defaultTZ string) error {
	if !ValidID(c.ID) {
		return Invalid("id", "must be 1-128 characters of letters, digits and . _ : @ + -")
	}
	if c.Email != "" {
		e, err := NormalizeEmail(c.Email)
		if err != nil {
			return Invalid("email", "is not a valid email address")
		}
		c.Email = e
	}
	if c.Phone != "" {
		p, err := NormalizePhone(c.Phone)
		if err != nil {
			return Invalid("phone", "is not a valid phone number in E.164 form (+33612345678)")
		}
		c.Phone = p
	}
	if c.Timezone == "" {
		c.Timezone = timezoneForPhone(c.Phone)
	}
	if c.Timezone == "" {
		c.Timezone = defaultTZ
	}
	if _, err := LoadLocation(c.Timezone); err != nil || c.Timezone == "Local" {
		return Invalid("timezone", "is not an IANA time zone name (Europe/Paris)")
	}
	if c.Locale != "" {
		if !localeRe.MatchString(c.Locale) {
			return Invalid("locale", "must be a language tag such as fr or en-GB")
		}
	}
	if len(c.Attributes) > maxAttributes {
		return Invalid("attributes", "at most %d attributes", maxAttributes)
	}
	for k, v := range c.Attributes {
		if !NamePattern.MatchString(k) {
			return Invalid("attributes", "name %q must be lower case letters, digits, _ . - (64 at most)", Truncate(k, 64))
		}
		if len(v) > maxAttrValueLen {
			return Invalid("attributes."+k, "at most %d bytes", maxAttrValueLen)
		}
	}
	if len(c.Tags) > maxTags {
		return Invalid("tags", "at most %d tags", maxTags)
	}
	for i, t := range c.Tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if !NamePattern.MatchString(t) {
			return Invalid("tags", "tag %q must be lower case letters, digits, _ . - (64 at most)", Truncate(t, 64))
		}
		c.Tags[i] = t
	}
	slices.Sort(c.Tags)
	c.Tags = slices.Compact(c.Tags)
	return nil
}

// Truncate cuts s after n bytes and marks the cut with "...".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// NormalizeEmail parses a bare address with net/mail and lower-cases its
// domain. Display names are refused: a contact's email is an address.
func NormalizeEmail(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != strings.TrimSpace(s) || len(a.Address) > 254 {
		return "", Invalid("email", "is not a valid email address")
	}
	at := strings.LastIndexByte(a.Address, '@')
	domain := strings.ToLower(a.Address[at+1:])
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", Invalid("email", "is not a valid email address")
	}
	return a.Address[:at+1] + domain, nil
}

// NormalizeAddressInput checks an address typed or sent for channel k
// and returns it normalised. Returns an *Error with code invalid naming
// channel or address; the message never quotes the address.
func NormalizeAddressInput(k channels.Kind, addr string) (string, error) {
	if !k.Valid() {
		return "", Invalid("channel", "must be email or sms")
	}
	if addr == "" {
		return "", Invalid("address", "is required")
	}
	if k == channels.Email {
		a, err := NormalizeEmail(addr)
		if err != nil {
			return "", Invalid("address", "is not a valid email address")
		}
		return a, nil
	}
	p, err := NormalizePhone(addr)
	if err != nil {
		return "", Invalid("address", "is not a valid phone number in E.164 form (+33612345678)")
	}
	return p, nil
}

// NormalizePhone parses a number in international form and returns it in
// E.164. Numbers without a leading + are refused: without a country they
// are ambiguous.
func NormalizePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "+") || len(s) > 32 {
		return "", Invalid("phone", "must start with + and a country code")
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", Invalid("phone", "is not a valid phone number")
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// SMSCapable reports whether an E.164 number can receive SMS: landlines
// cannot.
func SMSCapable(e164 string) bool {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return false
	}
	switch phonenumbers.GetNumberType(n) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE, phonenumbers.PAGER, phonenumbers.UNKNOWN, phonenumbers.VOIP:
		return true
	}
	return false
}

// timezoneForPhone returns the time zone of the phone's country or area
// when the numbering plan tells one, else "".
func timezoneForPhone(e164 string) string {
	if e164 == "" {
		return ""
	}
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	zones, err := phonenumbers.GetTimezonesForNumber(n)
	if err != nil || len(zones) == 0 || zones[0] == "Etc/Unknown" {
		return ""
	}
	return zones[0]
}

// NormalizeAddress returns the form of an address that suppression and the
// address index hash: lower-cased email, E.164 phone.
func NormalizeAddress(k channels.Kind, addr string) string {
	if k == channels.Email {
		return strings.ToLower(strings.TrimSpace(addr))
	}
	return strings.TrimSpace(addr)
}

var locations sync.Map // name -> *time.Location

// LoadLocation is time.LoadLocation with a cache: loading reads the zone
// database from disk, and the gate needs a zone for every recipient.
func LoadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}
