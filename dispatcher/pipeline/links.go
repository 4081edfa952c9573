package pipeline

import (
	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/templates"
)

// UnsubscribeURL returns the one-click unsubscribe link of a contact for a
// topic on a channel, as messages carry it.
func (d *Pipeline) UnsubscribeURL(contact string, k channels.Kind, topic, send string) (string, error) {
	token, err := d.signer.Sign(templates.Claims{Contact: contact, Channel: string(k), Topic: topic, Send: send})
	if err != nil {
		return "", err
	}
	return templates.UnsubscribeURL(d.cfg.PublicURL, token), nil
}
