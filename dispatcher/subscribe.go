package dispatcher

// mountSubscribe adds the public sign-up (double opt-in) routes.
func (a *api) mountSubscribe() {}
