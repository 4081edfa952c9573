package dispatcher

// mountTwilioStatus adds Twilio's status callbacks to the public routes.
func (a *api) mountTwilioStatus() {}
