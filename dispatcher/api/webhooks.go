package api

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/outbound"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// webhookID is the form of an outbound endpoint's id and of an event's.
var (
	webhookID = regexp.MustCompile(`^wh_[0-9a-f]{24}$`)
	eventID   = regexp.MustCompile(`^msg_[0-9a-f]{24}$`)
)

func webhookPathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !webhookID.MatchString(id) {
		return "", dispatcher.NotFound("webhook")
	}
	return id, nil
}

// notFoundAs names what a store's not-found error is about.
func notFoundAs(err error, what string) error {
	if errors.Is(err, dispatcher.ErrNotFound) {
		return dispatcher.NotFound(what)
	}
	return err
}

func (a *handler) postWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in outbound.Registration
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	ep, err := a.d.Webhooks.Register(r.Context(), in)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, ep, nil
}

func (a *handler) deleteWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := webhookPathID(r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.d.Webhooks.Delete(r.Context(), id); err != nil {
		return 0, nil, notFoundAs(err, "webhook")
	}
	return http.StatusNoContent, nil, nil
}

func (a *handler) getWebhookDeliveries(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := webhookPathID(r)
	if err != nil {
		return 0, nil, err
	}
	ds, err := a.d.Webhooks.Deliveries(r.Context(), id)
	if err != nil {
		return 0, nil, notFoundAs(err, "webhook")
	}
	return http.StatusOK, map[string][]storepkg.WebhookDelivery{"deliveries": ds}, nil
}

type replayRequest struct {
	EventID string `json:"event_id"`
}

func (a *handler) replayWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := webhookPathID(r)
	if err != nil {
		return 0, nil, err
	}
	var in replayRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	if !eventID.MatchString(in.EventID) {
		return 0, nil, dispatcher.Invalid("event_id", "must be an event id (msg_ and 24 hexadecimal digits)")
	}
	if err := a.d.Webhooks.Replay(r.Context(), id, in.EventID); err != nil {
		return 0, nil, notFoundAs(err, "webhook")
	}
	return http.StatusAccepted, map[string]string{"event_id": in.EventID, "status": "queued"}, nil
}
