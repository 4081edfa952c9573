package page

import (
	"fmt"
)

// entry is one message in each language. Formats take fmt verbs; the
// English ones index their arguments when the word order differs.
type entry struct{ fr, en string }

func (e entry) in(l Lang) string {
	if l.orDefault() == English {
		return e.en
	}
	return e.fr
}

// catalogue holds every string the pages show. Keys are dotted by page;
// "msg.<MessageKey>.title" and ".text" are the informative pages, and
// "channel.", "state.", "source.", "reason." and "problem." are looked up
// with a value from the caller (a value without an entry is shown as is).
var catalogue = map[string]entry{
	// Informative pages (Message).
	"msg.unsubscribe-invalid.title": {"Lien non valide", "Invalid link"},
	"msg.unsubscribe-invalid.text": {"Ce lien de désabonnement n'est pas valide. Utilisez le lien complet reçu dans le message.",
		"This unsubscribe link is not valid. Please use the full link from the message."},
	"msg.error.title": {"Erreur temporaire", "Temporary error"},
	"msg.error.text": {"Votre demande n'a pas pu être enregistrée. Réessayez dans quelques minutes.",
		"Your request could not be recorded. Please try again in a few minutes."},
	"msg.preferences-invalid.title": {"Lien non valide", "Invalid link"},
	"msg.preferences-invalid.text": {"Ce lien vers vos préférences n'est pas valide. Utilisez le lien complet reçu dans le message.",
		"This preferences link is not valid. Please use the full link from the message."},
	"msg.preferences-gone.title": {"Aucune donnée", "No data"},
	"msg.preferences-gone.text": {"Nous ne détenons plus de données vous concernant : il n'y a pas de préférences à afficher.",
		"We no longer hold any data about you: there are no preferences to show."},
	"msg.preferences-expired.title": {"Formulaire expiré", "Form expired"},
	"msg.preferences-expired.text": {"Ce formulaire a expiré ou ne vient pas de cette page. Rouvrez le lien reçu dans le message et recommencez : rien n'a été modifié.",
		"This form has expired or did not come from this page. Open the link from the message again and retry: nothing was changed."},
	"msg.too-many-requests.title": {"Trop de demandes", "Too many requests"},
	"msg.too-many-requests.text":  {"Veuillez réessayer dans une minute.", "Please try again in a minute."},
	"msg.too-many-saves.title":    {"Trop de demandes", "Too many requests"},
	"msg.too-many-saves.text": {"Vos choix ont été enregistrés de nombreuses fois en peu de temps : cette fois, rien n'a été modifié. Réessayez dans quelques minutes. Le bouton « Me désabonner de tout » et les liens de désinscription restent actifs.",
		"Your choices were saved many times in a short while: this time nothing was changed. Please try again in a few minutes. The “Unsubscribe from everything” button and the unsubscribe links keep working."},
	"msg.check-inbox.title": {"Vérifiez votre boîte de réception", "Check your inbox"},
	"msg.check-inbox.text": {"Si cette adresse peut recevoir nos e-mails, un message vient de lui être envoyé : cliquez sur le lien qu'il contient pour confirmer votre inscription (il est valable 48 heures). Sans confirmation, rien ne sera enregistré.",
		"If this address can receive our emails, a message was just sent to it: follow its link to confirm your subscription (valid for 48 hours). Without confirmation, nothing is recorded."},
	"msg.check-phone.title": {"Vérifiez votre téléphone", "Check your phone"},
	"msg.check-phone.text": {"Si ce numéro peut recevoir nos SMS, un message vient de lui être envoyé : répondez YES pour confirmer votre inscription. Sans réponse de votre part, rien ne sera enregistré.",
		"If this number can receive our text messages, one was just sent to it: reply YES to confirm your subscription. Without your reply, nothing is recorded."},
	"msg.form-unavailable.title": {"Formulaire indisponible", "Form unavailable"},
	"msg.form-unavailable.text":  {"Ce formulaire d'inscription ne propose aucun sujet valide.", "This sign-up form offers no valid topic."},
	"msg.signup-failed.title":    {"Inscription impossible", "Sign-up failed"},
	"msg.signup-failed.text":     {"%s", "%s"},
	"msg.signup-confirmed.title": {"Inscription confirmée", "Subscription confirmed"},
	"msg.signup-confirmed.text": {"Merci ! Vous recevrez désormais par e-mail : « %s ». Chaque message contient un lien pour vous désabonner.",
		"Thank you! You will now receive by email: “%s”. Every message carries a link to unsubscribe."},
	"msg.signup-already-confirmed.title": {"Inscription déjà confirmée", "Already confirmed"},
	"msg.signup-already-confirmed.text": {"Cette inscription a déjà été confirmée : il n'y a rien d'autre à faire.",
		"This subscription was already confirmed: there is nothing else to do."},
	"msg.signup-expired.title": {"Lien expiré ou inconnu", "Expired or unknown link"},
	"msg.signup-expired.text": {"Ce lien de confirmation n'est pas valide ou a expiré (il est valable 48 heures). Vous pouvez vous inscrire à nouveau.",
		"This confirmation link is not valid or has expired (it is valid for 48 hours). You may sign up again."},

	// One-click unsubscribe (Unsubscribe): %[1]s is the channel's
	// messages, %[2]s the topic.
	"unsubscribe.title":      {"Se désabonner", "Unsubscribe"},
	"unsubscribe.text":       {"Confirmez pour ne plus recevoir de %[1]s « %[2]s ».", "Confirm to stop receiving “%[2]s” %[1]s."},
	"unsubscribe.button":     {"Me désabonner", "Unsubscribe"},
	"unsubscribe.done.title": {"Désabonnement confirmé", "You are unsubscribed"},
	"unsubscribe.done.text":  {"Vous ne recevrez plus de %[1]s « %[2]s ».", "You will no longer receive “%[2]s” %[1]s."},

	// Confirmation of a sign-up (Confirm).
	"confirm.title":  {"Confirmer votre inscription", "Confirm your subscription"},
	"confirm.text":   {"Vous avez demandé à recevoir par e-mail : %s. Cliquez sur le bouton pour confirmer.", "You asked to receive by email: %s. Press the button to confirm."},
	"confirm.topic":  {"« %s »", "“%s”"},
	"confirm.button": {"Confirmer", "Confirm"},

	// The sign-up form (SignupForm). form.wording is the consent text
	// (FormWording): the id it is stored under derives from it.
	"form.title":      {"Inscription", "Sign up"},
	"form.topics":     {"Ce que vous souhaitez recevoir", "What you would like to receive"},
	"form.email":      {"Adresse e-mail", "Email address"},
	"form.phone":      {"Numéro de téléphone mobile", "Mobile phone number"},
	"form.phone-hint": {"Au format international, par exemple +33612345678.", "In international form, for example +447700900123."},
	"form.submit":     {"S'inscrire", "Subscribe"},
	"form.version":    {"Texte de consentement, version", "Consent text, version"},
	"form.wording": {"En cliquant sur « S'inscrire », j'accepte de recevoir de %s les %s choisis ci-dessus. Je peux retirer mon consentement à tout moment, sans frais, grâce au lien de désinscription présent dans chaque message ou en répondant STOP par SMS. Mes données servent uniquement à ces envois.",
		"By pressing “Subscribe”, I agree to receive from %s the %s chosen above. I can withdraw my consent at any time, free of charge, through the unsubscribe link in every message or by replying STOP by text message. My data is used for these messages only."},
	"problem.email":           {"Indiquez une adresse e-mail valide.", "Please give a valid email address."},
	"problem.email-and-phone": {"Indiquez une adresse e-mail ou un numéro de téléphone, pas les deux.", "Give an email address or a phone number, not both."},
	"problem.phone": {"Indiquez un numéro de mobile valide au format international (+33612345678).",
		"Please give a valid mobile number in international form (+447700900123)."},
	"problem.topics":    {"Choisissez au moins un sujet.", "Please choose at least one topic."},
	"problem.outdated":  {"Ce formulaire n'est pas à jour : rechargez la page et réessayez.", "This form is out of date: please reload the page and try again."},
	"problem.too-large": {"Votre demande est trop volumineuse.", "Your request is too large."},
	"problem.invalid":   {"Votre demande n'est pas valide.", "Your request is not valid."},

	// Channels: "channel.<kind>" in a table, ".plural" in a sentence.
	"channel.email":        {"e-mail", "email"},
	"channel.sms":          {"SMS", "SMS"},
	"channel.email.plural": {"e-mails", "emails"},
	"channel.sms.plural":   {"SMS", "text messages"},

	// The preference centre (Preferences).
	"pref.title":        {"Vos préférences", "Your preferences"},
	"pref.intro":        {"Choisissez ce que vous recevez de %s et consultez les données que nous détenons sur vous.", "Choose what you receive from %s, and see what we hold about you."},
	"pref.switch":       {"English version", "Version française"},
	"pref.saved-one":    {"Vos préférences sont enregistrées.", "Your preferences are saved."},
	"pref.saved-all":    {"Vous êtes désabonné(e) de tous les messages marketing.", "You are unsubscribed from all marketing messages."},
	"pref.topics":       {"Ce que vous recevez", "What you receive"},
	"pref.topics-intro": {"Cochez ce que vous souhaitez recevoir, décochez le reste, puis enregistrez.", "Tick what you want to receive, untick what you do not, then save."},
	"pref.no-address": {"Nous ne détenons ni adresse e-mail ni numéro de téléphone pour vous : nous ne vous envoyons rien.",
		"We hold no email address or phone number for you, so we send you nothing."},
	"pref.no-topics":    {"Il n'y a rien à choisir sur ce canal.", "There is nothing to choose on this channel."},
	"pref.legend.email": {"E-mails", "Emails"},
	"pref.legend.sms":   {"SMS", "Text messages (SMS)"},
	"pref.always":       {"toujours actif", "always on"},
	"pref.transactional-note": {"Les messages de service (marqués « toujours actif ») ne sont pas de la publicité : ils concernent une chose que vous avez demandée, " +
		"comme une commande ou votre compte, et ne peuvent donc pas être désactivés ici. Ils cessent si l'adresse est bloquée ou si vous fermez votre compte.",
		"Service messages (marked “always on”) are not advertising: they tell you about something you asked for, such as an order or your account, " +
			"so they cannot be turned off here. They stop if the address is blocked or you close your account."},
	"pref.save":            {"Enregistrer mes choix", "Save my choices"},
	"pref.all.title":       {"Se désabonner de tout", "Unsubscribe from everything"},
	"pref.all.text":        {"Arrêter tous les messages marketing, sur tous les canaux, en une fois. Les messages de service continuent.", "Stop every marketing message, on every channel, in one step. Service messages continue."},
	"pref.all.button":      {"Me désabonner de tout", "Unsubscribe from everything"},
	"pref.data.title":      {"Les données que nous détenons sur vous", "What we hold about you"},
	"pref.data.intro":      {"Tout ce qui est enregistré sur vous, à cet instant. Seul ce lien permet de le voir.", "Everything stored about you, as of now. Only this link shows it."},
	"pref.profile":         {"Profil", "Profile"},
	"pref.field":           {"Champ", "Field"},
	"pref.value":           {"Valeur", "Value"},
	"pref.email":           {"E-mail", "Email"},
	"pref.phone":           {"Téléphone", "Phone"},
	"pref.timezone":        {"Fuseau horaire", "Time zone"},
	"pref.locale":          {"Langue", "Language"},
	"pref.attributes":      {"Attributs", "Attributes"},
	"pref.tags":            {"Étiquettes", "Tags"},
	"pref.created":         {"Créé le", "Created"},
	"pref.updated":         {"Mis à jour le", "Last updated"},
	"pref.none":            {"aucun", "none"},
	"pref.consents":        {"Consentements actuels", "Current consents"},
	"pref.history":         {"Historique des consentements", "Consent history"},
	"pref.suppressions":    {"Adresses bloquées", "Blocked addresses"},
	"pref.channel":         {"Canal", "Channel"},
	"pref.topic":           {"Thème", "Topic"},
	"pref.state":           {"État", "State"},
	"pref.since":           {"Depuis", "Since"},
	"pref.source":          {"Origine", "Source"},
	"pref.evidence":        {"Preuve", "Evidence"},
	"pref.when":            {"Date", "When"},
	"pref.address":         {"Adresse", "Address"},
	"pref.reason":          {"Motif", "Reason"},
	"pref.until":           {"Jusqu'au", "Until"},
	"pref.permanent":       {"définitif", "permanent"},
	"pref.no-consents":     {"Aucun consentement enregistré.", "No consent recorded."},
	"pref.no-history":      {"Aucun événement de consentement enregistré.", "No consent event recorded."},
	"pref.no-suppressions": {"Aucune de vos adresses n'est bloquée.", "None of your addresses is blocked."},
	"pref.pace":            {"Votre rythme", "Your pace"},
	"pref.pace-intro": {"Faites une pause, dites à quelle fréquence et à quels moments vous voulez nos messages marketing. Les messages de service ne changent pas.",
		"Take a break, say how often and when you want our marketing messages. Service messages do not change."},
	"pref.pause":             {"Pas de message marketing jusqu'au (laisser vide pour reprendre)", "No marketing message until (leave empty to resume)"},
	"pref.frequency":         {"Fréquence", "How often"},
	"freq.every":             {"à chaque envoi", "every issue"},
	"freq.weekly":            {"au plus un par semaine", "at most one a week"},
	"freq.monthly":           {"au plus un par mois", "at most one a month"},
	"pref.hours":             {"Jours et heures préférés (votre fuseau ; aucun jour coché : à tout moment)", "Preferred days and hours (your time zone; no day ticked: any time)"},
	"pref.from":              {"de", "from"},
	"pref.to":                {"à", "to"},
	"pref.pace-save":         {"Enregistrer mon rythme", "Save my pace"},
	"pref.pace-held":         {"Votre rythme enregistré", "Your pace on record"},
	"pref.no-pace":           {"Vous n'avez choisi ni pause, ni fréquence, ni horaires.", "You chose no pause, frequency or hours."},
	"pref.what":              {"Choix", "Choice"},
	"pref.kind.pause":        {"pause jusqu'au", "pause until"},
	"pref.kind.hours":        {"jours et heures", "days and hours"},
	"pref.kind.frequency":    {"fréquence", "how often"},
	"day.mon":                {"lundi", "Monday"},
	"day.tue":                {"mardi", "Tuesday"},
	"day.wed":                {"mercredi", "Wednesday"},
	"day.thu":                {"jeudi", "Thursday"},
	"day.fri":                {"vendredi", "Friday"},
	"day.sat":                {"samedi", "Saturday"},
	"day.sun":                {"dimanche", "Sunday"},
	"msg.pace-invalid.title": {"Choix non valide", "Invalid choice"},
	"msg.pace-invalid.text": {"Une date de pause doit être à venir et à moins d'un an ; les heures doivent former une plage (de 18:00 à 22:00, par exemple). Rien n'a été modifié.",
		"A pause must end in the future and within a year; the hours must make a span (from 18:00 to 22:00, say). Nothing was changed."},
	"pref.history-cut": {"Seuls les %d derniers événements sont affichés.", "Only the latest %d events are shown."},
	"time.layout":      {"02/01/2006 15:04 MST", "2 Jan 2006, 15:04 MST"},

	// Ledger words of the preference centre's tables.
	"state.granted":           {"donné", "given"},
	"state.withdrawn":         {"retiré", "withdrawn"},
	"source.api":              {"nos systèmes", "our systems"},
	"source.import":           {"import", "import"},
	"source.unsubscribe-link": {"lien de désabonnement", "unsubscribe link"},
	"source.one-click":        {"désabonnement en un clic", "one-click unsubscribe"},
	"source.preference-page":  {"cette page", "this page"},
	"source.sms-stop":         {"réponse STOP", "STOP reply"},
	"source.complaint":        {"signalement de spam", "spam complaint"},
	"source.unsubscribe-mail": {"désabonnement par votre messagerie", "unsubscribe through your mailbox"},
	"source.demo":             {"démo", "demo"},
	"reason.bounce":           {"adresse rejetée", "address rejected"},
	"reason.complaint":        {"signalement de spam", "spam complaint"},
	"reason.stop":             {"réponse STOP", "STOP reply"},
	"reason.unsubscribe":      {"désabonnement", "unsubscribed"},
}

// localizer is an argument that has words of its own in each language
// (a Problem, a channel's messages).
type localizer interface{ localize(Lang) string }

// text returns the message key in l, formatted with args when there are
// any; a missing key gives the key itself (a test keeps every key the
// package uses in the catalogue).
func text(l Lang, key string, args ...any) string {
	e, ok := catalogue[key]
	if !ok {
		return key
	}
	if len(args) == 0 {
		return e.in(l)
	}
	loc := make([]any, len(args))
	for i, a := range args {
		if w, ok := a.(localizer); ok {
			a = w.localize(l)
		}
		loc[i] = a
	}
	return fmt.Sprintf(e.in(l), loc...)
}

// word returns the catalogue's word for value under prefix, or value
// itself when there is none (a source or reason added since).
func word(l Lang, prefix, value string) string {
	if e, ok := catalogue[prefix+value]; ok {
		return e.in(l)
	}
	return value
}

// tmplText is text for templates: a missing key fails the page, so that
// the key test and the golden files catch it.
func tmplText(l Lang, key string, args ...any) (string, error) {
	if _, ok := catalogue[key]; !ok {
		return "", fmt.Errorf("page: no message %q", key)
	}
	return text(l, key, args...), nil
}
