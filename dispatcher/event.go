package dispatcher

import (
	"context"
	"slices"
	"time"
)

// Event types: the facts Missive tells upstream systems through outbound
// webhooks.
const (
	EventConsentChanged  = "consent.changed"  // a consent was granted or withdrawn
	EventUnsubscribed    = "unsubscribed"     // a recipient withdrew through a link, a page or STOP
	EventSuppressed      = "suppressed"       // an address was put on the suppression list
	EventBounced         = "bounced"          // a message bounced
	EventComplained      = "complained"       // a recipient reported a message as spam
	EventDelivered       = "delivered"        // the provider reported a message delivered
	EventFailed          = "failed"           // a send failed for good
	EventSignupConfirmed = "signup.confirmed" // a double opt-in sign-up was confirmed
)

// EventTypes lists every event type, in the order the documentation gives.
var EventTypes = []string{
	EventConsentChanged, EventUnsubscribed, EventSuppressed, EventBounced,
	EventComplained, EventDelivered, EventFailed, EventSignupConfirmed,
}

// Event is one fact about a contact, told to the outbound webhooks that
// subscribe to its type. It holds ids and facts; Address is handed only to
// endpoints registered with include_address and never logged.
type Event struct {
	Type    string
	Contact string
	Time    time.Time
	Topic   string
	Channel string
	Run     string
	Send    string
	Reason  string
	// State is the new state of a consent (consent.changed): granted or
	// withdrawn.
	State string
	// Address is the address or number the event concerns, when the
	// emitter has it at hand; empty, it is read from the contact for the
	// endpoints that want it.
	Address string
}

// Events receives the events of the operations that cause them. Emit never
// fails the caller's operation: an event that cannot be queued is logged
// (without personal data) and dropped.
type Events interface {
	Emit(ctx context.Context, e Event)
}

// EmitFunc adapts a function to Events.
type EmitFunc func(ctx context.Context, e Event)

// Emit calls f.
func (f EmitFunc) Emit(ctx context.Context, e Event) { f(ctx, e) }

// NoEvents drops every event: the default of the parts that emit them.
// It compares equal to itself, so a part may skip the work of an event
// nobody receives.
var NoEvents Events = noEvents{}

type noEvents struct{}

func (noEvents) Emit(context.Context, Event) {}

// unsubscribeSources are the ledger sources of a recipient's own
// withdrawal: their withdrawals are also told as "unsubscribed".
var unsubscribeSources = []string{"unsubscribe-link", "one-click", "preference-page", "sms-stop", "unsubscribe-mail"}

// ConsentChanges returns the events of consent changes written for a
// contact: one consent.changed each (the reason is the ledger source),
// and an unsubscribed for a withdrawal the recipient made.
func ConsentChanges(contact string, evs []ConsentEvent) []Event {
	out := make([]Event, 0, len(evs))
	for _, c := range evs {
		e := Event{Type: EventConsentChanged, Contact: contact, Time: c.At, Topic: c.Topic,
			Channel: string(c.Channel), Reason: c.Source, State: string(c.State)}
		out = append(out, e)
		if c.State == Withdrawn && slices.Contains(unsubscribeSources, c.Source) {
			e.Type, e.State = EventUnsubscribed, ""
			out = append(out, e)
		}
	}
	return out
}
