package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

type suppressionRequest struct {
	Channel channels.Kind `json:"channel"`
	Address string        `json:"address"`
	Reason  string        `json:"reason,omitempty"`
	Until   time.Time     `json:"until,omitzero"`
}

type addressRequest struct {
	Channel channels.Kind `json:"channel"`
	Address string        `json:"address"`
}

func (a *handler) postSuppression(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in suppressionRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	addr, err := dispatcher.NormalizeAddressInput(in.Channel, in.Address)
	if err != nil {
		return 0, nil, err
	}
	if !in.Until.IsZero() && !in.Until.After(a.d.Config.Now()) {
		return 0, nil, dispatcher.Invalid("until", "must be in the future (or left out for good)")
	}
	ctx := r.Context()
	if err := a.d.Store.Suppress(ctx, in.Channel, addr, in.Reason, in.Until); err != nil {
		return 0, nil, err
	}
	sup, err := a.d.Store.Suppression(ctx, in.Channel, addr)
	if err != nil {
		return 0, nil, err
	}
	// Told to the webhooks when the address is a contact's.
	if contact, err := a.d.Store.ContactIDByAddress(ctx, in.Channel, addr); err == nil {
		a.d.Events.Emit(ctx, dispatcher.Event{Type: dispatcher.EventSuppressed, Contact: contact, Time: a.d.Config.Now().UTC(),
			Channel: string(in.Channel), Reason: sup.Reason, Address: addr})
	}
	return http.StatusCreated, sup, nil
}

// readAddress reads an addressRequest body and returns its channel and
// normalised address.
func readAddress(w http.ResponseWriter, r *http.Request) (channels.Kind, string, error) {
	var in addressRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return "", "", err
	}
	addr, err := dispatcher.NormalizeAddressInput(in.Channel, in.Address)
	return in.Channel, addr, err
}

func (a *handler) deleteSuppression(w http.ResponseWriter, r *http.Request) (int, any, error) {
	k, addr, err := readAddress(w, r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.d.Store.Unsuppress(r.Context(), k, addr); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (a *handler) lookupSuppression(w http.ResponseWriter, r *http.Request) (int, any, error) {
	k, addr, err := readAddress(w, r)
	if err != nil {
		return 0, nil, err
	}
	sup, err := a.d.Store.Suppression(r.Context(), k, addr)
	if err != nil {
		if errors.Is(err, dispatcher.ErrNotFound) {
			return 0, nil, dispatcher.NotFound("suppression")
		}
		return 0, nil, err
	}
	return http.StatusOK, sup, nil
}
