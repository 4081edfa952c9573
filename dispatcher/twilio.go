package dispatcher

// mountTwilio adds Twilio's webhooks to the public routes.
func (a *api) mountTwilio() {}
