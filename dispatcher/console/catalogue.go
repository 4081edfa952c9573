package console

import (
	"fmt"

	"github.com/missive-dev/missive/dispatcher/page"
)

// entry is one string in each language; formats take fmt verbs.
type entry struct{ fr, en string }

// catalogue holds every string the console shows, keyed by page or by
// kind of value: "state.", "runstate.", "reason.", "counter.",
// "feedback.", "channel.", "role.", "field." are looked up with a value
// (tr), which is shown as is when it has no entry.
var catalogue = map[string]entry{
	"nav.campaigns": {"Campagnes", "Campaigns"},
	"nav.users":     {"Utilisateurs", "Users"},
	"nav.signout":   {"Se déconnecter", "Sign out"},

	"error.title": {"Erreur", "Error"},
	"error.back":  {"Retour aux campagnes", "Back to the campaigns"},
	"error.csrf": {"Ce formulaire a expiré ou ne vient pas de la console : rechargez la page et recommencez. Rien n'a été modifié.",
		"This form has expired or did not come from the console: reload the page and retry. Nothing was changed."},
	"error.forbidden":    {"Votre rôle ne permet pas cette action.", "Your role does not allow this."},
	"error.unauthorized": {"Connectez-vous d'abord.", "Sign in first."},
	"error.not_found":    {"Cette page n'existe pas.", "This page does not exist."},
	"error.internal":     {"Erreur interne : réessayez dans un moment.", "Internal error: please try again in a while."},

	"signin.title":  {"Connexion", "Sign in"},
	"signin.button": {"Se connecter", "Sign in"},
	"signin.failed": {"Nom ou mot de passe incorrect.", "Wrong name or password."},
	"signin.locked": {"Trop d'essais infructueux : réessayez dans %d minutes.", "Too many failed attempts: try again in %d minutes."},

	"campaigns.title":   {"Campagnes", "Campaigns"},
	"campaigns.new":     {"Nouvelle campagne", "New campaign"},
	"campaigns.none":    {"Aucune campagne pour l'instant.", "No campaign yet."},
	"campaigns.lastrun": {"Dernier envoi", "Last run"},
	"campaigns.sentof":  {"%d envoyés sur %d", "%d sent of %d"},

	"form.new":     {"Nouvelle campagne", "New campaign"},
	"form.edit":    {"Modifier la campagne", "Edit campaign"},
	"form.id.hint": {"Minuscules, chiffres, _ . - ; ne change plus ensuite.", "Lower-case letters, digits, _ . -; cannot change later."},
	"form.fallback": {"Repli : un seul canal par contact, le premier qui passe les contrôles",
		"Fallback: one channel per contact, the first that passes the checks"},
	"form.save": {"Enregistrer", "Save"},

	"campaign.title":     {"Campagne", "Campaign"},
	"campaign.nextfires": {"Prochains envois", "Next runs"},
	"campaign.actions":   {"Actions", "Actions"},
	"campaign.runs":      {"Envois", "Runs"},
	"campaign.noruns":    {"Aucun envoi pour l'instant.", "No run yet."},

	"action.edit":           {"Modifier", "Edit"},
	"action.start":          {"Envoyer maintenant", "Start now"},
	"action.pause":          {"Mettre en pause", "Pause"},
	"action.resume":         {"Reprendre", "Resume"},
	"action.cancel":         {"Annuler la campagne", "Cancel campaign"},
	"action.run.pause":      {"Mettre l'envoi en pause", "Pause run"},
	"action.run.resume":     {"Reprendre l'envoi", "Resume run"},
	"action.run.cancel":     {"Annuler l'envoi", "Cancel run"},
	"schedule.title":        {"Programmation", "Schedule"},
	"schedule.kind":         {"Quand", "When"},
	"schedule.kind.once":    {"Une fois", "Once"},
	"schedule.kind.cron":    {"De façon récurrente (cron)", "Repeatedly (cron)"},
	"schedule.at":           {"Date et heure (%s)", "Date and time (%s)"},
	"schedule.cron.hint":    {"Minute heure jour mois jour-de-semaine, par ex. « 0 10 * * 1 » : le lundi à 10:00.", "Minute hour day month weekday, e.g. “0 10 * * 1”: Mondays at 10:00."},
	"schedule.local.hint":   {"Facultatif : chaque message attend cette heure dans le fuseau de son destinataire.", "Optional: each message waits for that time in its recipient's own zone."},
	"schedule.preview":      {"Aperçu", "Preview"},
	"schedule.save":         {"Enregistrer la programmation", "Save schedule"},
	"schedule.previewtitle": {"Les 5 prochains déclenchements (%s) :", "The next 5 fire times (%s):"},
	"schedule.nofire":       {"Cette programmation ne se déclenche plus.", "This schedule fires no more."},
	"schedule.none":         {"aucune", "none"},
	"schedule.once":         {"une fois,", "once,"},
	"schedule.localat":      {"à %s heure locale du destinataire", "at %s in each recipient's zone"},

	"run.title":         {"Envoi", "Run"},
	"run.campaign":      {"Campagne « %s »", "Campaign “%s”"},
	"run.fired":         {"déclenché", "fired"},
	"run.finished":      {"terminé", "finished"},
	"run.pausedreason":  {"La campagne s'est mise en pause :", "The campaign paused itself:"},
	"run.inflight":      {"%d messages en cours ; échéances :", "%d messages in flight; deadlines:"},
	"run.timeline":      {"Envois dans le temps (par minute)", "Sends over time (per minute)"},
	"run.otheroutcomes": {"autres issues (échecs, annulations, arrêts)", "other outcomes (failed, cancelled, stopped)"},
	"run.nosends":       {"Aucun message parti pour l'instant.", "No message has left yet."},
	"run.gate":          {"Décisions des contrôles", "Gate decisions"},
	"run.nodecisions":   {"Aucune décision pour l'instant.", "No decision yet."},
	"run.outcomes":      {"Issues", "Outcomes"},
	"run.feedback":      {"Retours", "Feedback"},
	"run.unbalanced":    {"Des messages sont encore en cours.", "Some messages are still in flight."},

	"users.title":       {"Utilisateurs de la console", "Console users"},
	"users.created":     {"Créé", "Created"},
	"users.add":         {"Ajouter un utilisateur", "Add a user"},
	"users.remove":      {"Supprimer", "Remove"},
	"users.newpassword": {"nouveau mot de passe", "new password"},
	"users.setpassword": {"Changer le mot de passe", "Set password"},

	"field.id":              {"Identifiant", "Id"},
	"field.name":            {"Nom", "Name"},
	"field.password":        {"Mot de passe", "Password"},
	"field.role":            {"Rôle", "Role"},
	"field.timezone":        {"Fuseau horaire", "Time zone"},
	"field.state":           {"État", "State"},
	"field.topic":           {"Sujet", "Topic"},
	"field.segment":         {"Segment", "Segment"},
	"field.channels":        {"Canaux", "Channels"},
	"field.fallback":        {"repli", "fallback"},
	"field.templates.email": {"Modèle e-mail", "Email template"},
	"field.templates.sms":   {"Modèle SMS", "SMS template"},
	"field.rate_limit":      {"Cadence maximale", "Rate limit"},
	"field.schedule":        {"Programmation", "Schedule"},
	"field.cron":            {"Expression cron", "Cron spec"},
	"field.tz":              {"Fuseau de l'expression", "Zone of the spec"},
	"field.local_time":      {"Heure locale du destinataire", "Recipient's local time"},
	"field.at":              {"Date et heure", "Date and time"},
	"field.csrf":            {"Formulaire", "Form"},

	"role.admin":     {"administrateur", "admin"},
	"role.marketer":  {"marketeur", "marketer"},
	"role.read-only": {"lecture seule", "read-only"},

	"state.draft":     {"brouillon", "draft"},
	"state.scheduled": {"programmée", "scheduled"},
	"state.running":   {"en cours", "running"},
	"state.paused":    {"en pause", "paused"},
	"state.completed": {"terminée", "completed"},
	"state.cancelled": {"annulée", "cancelled"},

	"runstate.planning":  {"préparation", "planning"},
	"runstate.sending":   {"envoi", "sending"},
	"runstate.paused":    {"en pause", "paused"},
	"runstate.completed": {"terminé", "completed"},
	"runstate.cancelled": {"annulé", "cancelled"},

	"channel.email":      {"e-mail", "email"},
	"channel.sms":        {"SMS", "SMS"},
	"order.email":        {"e-mail", "email"},
	"order.sms":          {"SMS", "SMS"},
	"order.email,sms":    {"e-mail puis SMS", "email, then SMS"},
	"order.sms,email":    {"SMS puis e-mail", "SMS, then email"},
	"kind.marketing":     {"marketing", "marketing"},
	"kind.transactional": {"transactionnel", "transactional"},

	"counter.planned":   {"prévus", "planned"},
	"counter.queued":    {"en file", "queued"},
	"counter.deferred":  {"différés", "deferred"},
	"counter.sending":   {"en cours d'envoi", "sending"},
	"counter.sent":      {"envoyés", "sent"},
	"counter.failed":    {"échecs", "failed"},
	"counter.cancelled": {"annulés", "cancelled"},

	"reason.queued":                 {"acceptés", "accepted"},
	"reason.deferred":               {"différés (heures calmes)", "deferred (quiet hours)"},
	"reason.sending":                {"en cours d'envoi", "sending"},
	"reason.sent":                   {"envoyés", "sent"},
	"reason.failed":                 {"échecs", "failed"},
	"reason.cancelled":              {"annulés", "cancelled"},
	"reason.planned":                {"prévus", "planned"},
	"reason.no_address":             {"sans adresse", "no address"},
	"reason.invalid_address":        {"adresse non valide", "invalid address"},
	"reason.no_consent":             {"sans consentement", "no consent"},
	"reason.capped":                 {"plafond de fréquence atteint", "frequency cap reached"},
	"reason.reached_before":         {"déjà atteints par un envoi précédent", "reached by an earlier run"},
	"reason.paused_by_recipient":    {"en pause à la demande du destinataire", "paused by the recipient"},
	"reason.recipient_frequency":    {"fréquence choisie par le destinataire atteinte", "the recipient's chosen frequency reached"},
	"reason.suppressed_bounce":      {"exclus : rebond", "suppressed: bounce"},
	"reason.suppressed_complaint":   {"exclus : plainte", "suppressed: complaint"},
	"reason.suppressed_stop":        {"exclus : STOP", "suppressed: STOP"},
	"reason.suppressed_unsubscribe": {"exclus : désabonnement", "suppressed: unsubscribe"},

	"feedback.delivered":    {"distribués", "delivered"},
	"feedback.bounced_hard": {"rebonds définitifs", "hard bounces"},
	"feedback.bounced_soft": {"rebonds temporaires", "soft bounces"},
	"feedback.complained":   {"plaintes", "complaints"},
	"feedback.failed":       {"échecs signalés", "failures reported"},
	"feedback.unsubscribes": {"désabonnements", "unsubscribes"},
}

// text returns the catalogue's string key in l, formatted with args. An
// unknown key is an error, so that a template naming one fails its test.
func text(l page.Lang, key string, args ...any) (string, error) {
	e, ok := catalogue[key]
	if !ok {
		return "", fmt.Errorf("console: no string %q", key)
	}
	s := e.en
	if l == page.French {
		s = e.fr
	}
	if len(args) > 0 {
		s = fmt.Sprintf(s, args...)
	}
	return s, nil
}

// label returns the catalogue's name of a value (prefix + value), or the
// value itself.
func label(l page.Lang, prefix string, value any) string {
	v := fmt.Sprint(value)
	if s, err := text(l, prefix+v); err == nil {
		return s
	}
	return v
}
