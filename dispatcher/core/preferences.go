package core

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// The preference centre: public, no account, the token of a message's
// link is the credential and names the only contact it can act on. The
// page lets the recipient choose topics per channel, leave everything at
// once, and shows what is held on them (GDPR Art. 15). It needs no
// JavaScript: plain forms, Post/Redirect/Get.

const (

	// prefCSRFBucket is the step of the CSRF token's clock; prefCSRFTTL is
	// how long a token is accepted (at most; at least prefCSRFTTL minus
	// one bucket).
	prefCSRFBucket = 10 * time.Minute
	prefCSRFTTL    = 2 * time.Hour
	// prefMaxHistory bounds the ledger lines the page shows.
	prefMaxHistory = 500
)

// mountPreferences adds the preference centre to the public routes.
func (a *api) mountPreferences() {
	a.mux.HandleFunc("GET /preferences/{token}", a.preferencesPage)
	a.mux.HandleFunc("POST /preferences/{token}", a.preferencesPost)
}

var (
	prefInvalidPage = page{
		TitleFR: "Lien non valide", TextFR: "Ce lien vers vos préférences n'est pas valide. Utilisez le lien complet reçu dans le message.",
		TitleEN: "Invalid link", TextEN: "This preferences link is not valid. Please use the full link from the message.",
	}
	prefGonePage = page{
		TitleFR: "Aucune donnée", TextFR: "Nous ne détenons plus de données vous concernant : il n'y a pas de préférences à afficher.",
		TitleEN: "No data", TextEN: "We no longer hold any data about you: there are no preferences to show.",
	}
	prefForbiddenPage = page{
		TitleFR: "Formulaire expiré", TextFR: "Ce formulaire a expiré ou ne vient pas de cette page. Rouvrez le lien reçu dans le message et recommencez : rien n'a été modifié.",
		TitleEN: "Form expired", TextEN: "This form has expired or did not come from this page. Open the link from the message again and retry: nothing was changed.",
	}
)

// prefClaims verifies a preference token. Preference links carry the
// claims of the message they came in; only the contact matters here.
func (a *api) prefClaims(token string) (templates.Claims, bool) {
	cl, err := a.d.signer.Verify(token)
	if err != nil || !dispatcher.ValidID(cl.Contact) || !channels.Kind(cl.Channel).Valid() ||
		(cl.Topic != "" && !dispatcher.NamePattern.MatchString(cl.Topic)) {
		return templates.Claims{}, false
	}
	return cl, true
}

func (a *api) preferencesPage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	cl, ok := a.prefClaims(token)
	if !ok {
		writePage(w, http.StatusBadRequest, prefInvalidPage)
		return
	}
	ctx := r.Context()
	c, err := a.d.Store.Contact(ctx, cl.Contact)
	if errors.Is(err, dispatcher.ErrNotFound) {
		writePage(w, http.StatusNotFound, prefGonePage)
		return
	}
	if err != nil {
		a.d.log.Error("preference page failed", "route", r.Pattern, "error", err)
		writePage(w, http.StatusServiceUnavailable, errorPage)
		return
	}
	lang, explicit := prefLanguage(r, c)
	v, err := a.d.buildPrefView(ctx, c, lang)
	if err != nil {
		a.d.log.Error("preference page failed", "route", r.Pattern, "error", err)
		writePage(w, http.StatusServiceUnavailable, errorPage)
		return
	}
	v.Action = "/preferences/" + token
	if explicit {
		v.Action += "?lang=" + lang
	}
	v.Saved = r.URL.Query().Get("saved")
	writePrefPage(w, v)
}

func (a *api) preferencesPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writePage(w, http.StatusRequestEntityTooLarge, prefInvalidPage)
			return
		}
		writePage(w, http.StatusBadRequest, prefInvalidPage)
		return
	}
	token := r.PathValue("token")
	cl, ok := a.prefClaims(token)
	if !ok {
		writePage(w, http.StatusBadRequest, prefInvalidPage)
		return
	}
	now := a.d.cfg.Now()
	if !prefSameOrigin(r, a.d.cfg.PublicURL) || !a.d.checkPrefCSRF(cl.Contact, r.PostFormValue("csrf"), now) {
		writePage(w, http.StatusForbidden, prefForbiddenPage)
		return
	}
	ctx := r.Context()
	var (
		changed []dispatcher.ConsentEvent
		err     error
		saved   string
	)
	switch r.PostFormValue("do") {
	case "save":
		changed, err = a.d.consent.SavePreferences(ctx, cl.Contact, r.PostForm["shown"], r.PostForm["on"], now)
		saved = "1"
	case "unsubscribe-all":
		changed, err = a.d.consent.WithdrawAllMarketing(ctx, cl.Contact, now)
		saved = "all"
	default:
		writePage(w, http.StatusBadRequest, prefInvalidPage)
		return
	}
	if errors.Is(err, dispatcher.ErrNotFound) {
		writePage(w, http.StatusNotFound, prefGonePage)
		return
	}
	if err != nil {
		a.d.log.Error("preference update failed", "route", r.Pattern, "error", err)
		writePage(w, http.StatusServiceUnavailable, errorPage)
		return
	}
	run, _, _ := dispatcher.SplitSendID(cl.Send)
	for _, e := range changed {
		if e.State != dispatcher.Withdrawn {
			continue
		}
		if err := a.d.Store.CountFeedback(context.WithoutCancel(ctx), run, e.Topic, storepkg.FeedbackUnsubscribes); err != nil {
			a.d.log.Warn("preference page: feedback not counted", "error", err)
		}
	}
	a.d.log.Debug("preferences saved", "changes", len(changed))
	q := url.Values{"saved": {saved}}
	if l := r.URL.Query().Get("lang"); l == "fr" || l == "en" {
		q.Set("lang", l)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, "/preferences/"+token+"?"+q.Encode(), http.StatusSeeOther)
}

// --- CSRF: an HMAC of the contact id and a time bucket, under a key of
// its own. The bucket travels in clear so that the server needs no state.

func (d *Dispatcher) prefCSRFMAC(contact string, bucket int64) []byte {
	m := hmac.New(sha256.New, storepkg.DeriveKey(d.cfg.Secret, "preferences-csrf"))
	m.Write([]byte(contact))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(bucket, 10)))
	return m.Sum(nil)
}

func prefBucket(t time.Time) int64 { return t.Unix() / int64(prefCSRFBucket/time.Second) }

// prefCSRF returns the CSRF token of contact's forms at now.
func (d *Dispatcher) prefCSRF(contact string, now time.Time) string {
	b := prefBucket(now)
	return strconv.FormatInt(b, 10) + "." + base64.RawURLEncoding.EncodeToString(d.prefCSRFMAC(contact, b))
}

// checkPrefCSRF reports whether tok is a CSRF token of contact issued
// less than prefCSRFTTL ago. The MAC is compared in constant time.
func (d *Dispatcher) checkPrefCSRF(contact, tok string, now time.Time) bool {
	bs, enc, ok := strings.Cut(tok, ".")
	if !ok || len(bs) == 0 || len(bs) > 12 || len(enc) > 64 {
		return false
	}
	for i := 0; i < len(bs); i++ {
		if bs[i] < '0' || bs[i] > '9' {
			return false
		}
	}
	b, err := strconv.ParseInt(bs, 10, 64)
	if err != nil {
		return false
	}
	cur := prefBucket(now)
	if b > cur || cur-b >= int64(prefCSRFTTL/prefCSRFBucket) {
		return false
	}
	sum, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return false
	}
	return hmac.Equal(sum, d.prefCSRFMAC(contact, b))
}

// prefSameOrigin checks the browser's own word on where a POST comes
// from, when it gives one: Sec-Fetch-Site must be same-origin or none,
// and an Origin must be this server's. Pages served with no-referrer make
// browsers send "Origin: null", which says nothing either way; the CSRF
// token decides then.
func prefSameOrigin(r *http.Request, public string) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	p, err := url.Parse(public)
	return err == nil && strings.EqualFold(p.Scheme, u.Scheme) && strings.EqualFold(p.Host, u.Host)
}

// --- changes

// --- language

// prefLanguage picks the page's language: ?lang= (the switch link), the
// contact's locale, Accept-Language, English. explicit says the query
// chose it, so that the forms keep it.
func prefLanguage(r *http.Request, c *dispatcher.Contact) (lang string, explicit bool) {
	if l := r.URL.Query().Get("lang"); l == "fr" || l == "en" {
		return l, true
	}
	if l := prefLangOf(c.Locale); l != "" {
		return l, false
	}
	if l := prefAcceptLanguage(r.Header.Get("Accept-Language")); l != "" {
		return l, false
	}
	return "en", false
}

func prefLangOf(tag string) string {
	tag = strings.ToLower(strings.TrimSpace(tag))
	for _, l := range []string{"fr", "en"} {
		if tag == l || strings.HasPrefix(tag, l+"-") || strings.HasPrefix(tag, l+"_") {
			return l
		}
	}
	return ""
}

// prefAcceptLanguage returns fr or en, whichever the header prefers (the
// first one on equal weights), or "".
func prefAcceptLanguage(h string) string {
	if len(h) > 512 {
		h = h[:512]
	}
	best, bestQ := "", 0.0
	for part := range strings.SplitSeq(h, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		if l := prefLangOf(tag); l != "" && q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// --- the page

type prefText struct {
	Lang, Title, Intro, SwitchLabel, SwitchName, OtherLang string
	SavedOne, SavedAll                                     string
	TopicsTitle, TopicsIntro, NoAddress, NoTopics          string
	Always, TransactionalNote                              string
	Save                                                   string
	AllTitle, AllText, AllButton                           string
	DataTitle, DataIntro                                   string
	Profile, Field, Value                                  string
	Email, Phone, Timezone, Locale, Attributes, Tags       string
	Created, Updated, None                                 string
	Consents, History, Suppressions                        string
	Channel, Topic, State, Since, Source, Evidence, When   string
	Address, Reason, Until, Permanent                      string
	NoConsents, NoHistory, NoSuppressions, HistoryCut      string
	States, Sources, Reasons                               map[string]string
	EmailLegend, SMSLegend, EmailWord, SMSWord             string
	TimeLayout                                             string
}

var prefTexts = map[string]*prefText{
	"en": {
		Lang: "en", Title: "Your preferences", Intro: "Choose what you receive from %s, and see what we hold about you.",
		SwitchLabel: "Version française", SwitchName: "Français", OtherLang: "fr",
		SavedOne: "Your preferences are saved.", SavedAll: "You are unsubscribed from all marketing messages.",
		TopicsTitle: "What you receive", TopicsIntro: "Tick what you want to receive, untick what you do not, then save.",
		NoAddress: "We hold no email address or phone number for you, so we send you nothing.",
		NoTopics:  "There is nothing to choose on this channel.",
		Always:    "always on",
		TransactionalNote: "Service messages (marked “always on”) are not advertising: they tell you about something you asked for, such as an order or your account, " +
			"so they cannot be turned off here. They stop if the address is blocked or you close your account.",
		Save:     "Save my choices",
		AllTitle: "Unsubscribe from everything", AllText: "Stop every marketing message, on every channel, in one step. Service messages continue.",
		AllButton: "Unsubscribe from everything",
		DataTitle: "What we hold about you", DataIntro: "Everything stored about you, as of now. Only this link shows it.",
		Profile: "Profile", Field: "Field", Value: "Value",
		Email: "Email", Phone: "Phone", Timezone: "Time zone", Locale: "Language", Attributes: "Attributes", Tags: "Tags",
		Created: "Created", Updated: "Last updated", None: "none",
		Consents: "Current consents", History: "Consent history", Suppressions: "Blocked addresses",
		Channel: "Channel", Topic: "Topic", State: "State", Since: "Since", Source: "Source", Evidence: "Evidence", When: "When",
		Address: "Address", Reason: "Reason", Until: "Until", Permanent: "permanent",
		NoConsents: "No consent recorded.", NoHistory: "No consent event recorded.", NoSuppressions: "None of your addresses is blocked.",
		HistoryCut: "Only the latest %d events are shown.",
		States:     map[string]string{"granted": "given", "withdrawn": "withdrawn"},
		Sources: map[string]string{"api": "our systems", "import": "import", "unsubscribe-link": "unsubscribe link",
			"one-click": "one-click unsubscribe", "preference-page": "this page", "sms-stop": "STOP reply", "complaint": "spam complaint", "demo": "demo"},
		Reasons: map[string]string{"bounce": "address rejected", "complaint": "spam complaint", "stop": "STOP reply",
			"unsubscribe": "unsubscribed"},
		EmailLegend: "Emails", SMSLegend: "Text messages (SMS)", EmailWord: "email", SMSWord: "SMS",
		TimeLayout: "2 Jan 2006, 15:04 MST",
	},
	"fr": {
		Lang: "fr", Title: "Vos préférences", Intro: "Choisissez ce que vous recevez de %s et consultez les données que nous détenons sur vous.",
		SwitchLabel: "English version", SwitchName: "English", OtherLang: "en",
		SavedOne: "Vos préférences sont enregistrées.", SavedAll: "Vous êtes désabonné(e) de tous les messages marketing.",
		TopicsTitle: "Ce que vous recevez", TopicsIntro: "Cochez ce que vous souhaitez recevoir, décochez le reste, puis enregistrez.",
		NoAddress: "Nous ne détenons ni adresse e-mail ni numéro de téléphone pour vous : nous ne vous envoyons rien.",
		NoTopics:  "Il n'y a rien à choisir sur ce canal.",
		Always:    "toujours actif",
		TransactionalNote: "Les messages de service (marqués « toujours actif ») ne sont pas de la publicité : ils concernent une chose que vous avez demandée, " +
			"comme une commande ou votre compte, et ne peuvent donc pas être désactivés ici. Ils cessent si l'adresse est bloquée ou si vous fermez votre compte.",
		Save:     "Enregistrer mes choix",
		AllTitle: "Se désabonner de tout", AllText: "Arrêter tous les messages marketing, sur tous les canaux, en une fois. Les messages de service continuent.",
		AllButton: "Me désabonner de tout",
		DataTitle: "Les données que nous détenons sur vous", DataIntro: "Tout ce qui est enregistré sur vous, à cet instant. Seul ce lien permet de le voir.",
		Profile: "Profil", Field: "Champ", Value: "Valeur",
		Email: "E-mail", Phone: "Téléphone", Timezone: "Fuseau horaire", Locale: "Langue", Attributes: "Attributs", Tags: "Étiquettes",
		Created: "Créé le", Updated: "Mis à jour le", None: "aucun",
		Consents: "Consentements actuels", History: "Historique des consentements", Suppressions: "Adresses bloquées",
		Channel: "Canal", Topic: "Thème", State: "État", Since: "Depuis", Source: "Origine", Evidence: "Preuve", When: "Date",
		Address: "Adresse", Reason: "Motif", Until: "Jusqu'au", Permanent: "définitif",
		NoConsents: "Aucun consentement enregistré.", NoHistory: "Aucun événement de consentement enregistré.", NoSuppressions: "Aucune de vos adresses n'est bloquée.",
		HistoryCut: "Seuls les %d derniers événements sont affichés.",
		States:     map[string]string{"granted": "donné", "withdrawn": "retiré"},
		Sources: map[string]string{"api": "nos systèmes", "import": "import", "unsubscribe-link": "lien de désabonnement",
			"one-click": "désabonnement en un clic", "preference-page": "cette page", "sms-stop": "réponse STOP", "complaint": "signalement de spam", "demo": "démo"},
		Reasons: map[string]string{"bounce": "adresse rejetée", "complaint": "signalement de spam", "stop": "réponse STOP",
			"unsubscribe": "désabonnement"},
		EmailLegend: "E-mails", SMSLegend: "SMS", EmailWord: "e-mail", SMSWord: "SMS",
		TimeLayout: "02/01/2006 15:04 MST",
	},
}

type prefView struct {
	T            *prefText
	Intro        string
	Action       string
	CSRF         string
	Saved        string
	Channels     []prefChannel
	HasTx        bool
	HasMarketing bool
	Profile      []prefRow
	Attributes   []prefRow
	Consents     [][]string
	History      [][]string
	HistoryCut   string
	Suppressions [][]string
}

type prefChannel struct {
	Legend, Address string
	Topics          []prefTopic
}

type prefTopic struct {
	InputID, Value, Name, Description string
	Checked, Transactional            bool
}

type prefRow struct{ Name, Value string }

// buildPrefView gathers what the page shows about c.
func (d *Dispatcher) buildPrefView(ctx context.Context, c *dispatcher.Contact, lang string) (*prefView, error) {
	s := d.Store
	t := prefTexts[lang]
	topics, err := s.Topics(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := s.Redis.HGetAll(ctx, s.ConsentKey(c.ID)).Result()
	if err != nil {
		return nil, err
	}
	cur := make(map[string]storepkg.ConsentCurrent, len(raw))
	for f, v := range raw {
		var cc storepkg.ConsentCurrent
		if json.Unmarshal([]byte(v), &cc) == nil {
			cur[f] = cc
		}
	}
	ledger, err := s.ConsentLedger(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil || c.Timezone == "" {
		loc, _ = time.LoadLocation(d.cfg.DefaultTimezone)
	}
	when := func(at time.Time) string {
		if at.IsZero() {
			return ""
		}
		return at.In(loc).Format(t.TimeLayout)
	}
	word := func(m map[string]string, k string) string {
		if w, ok := m[k]; ok {
			return w
		}
		return k
	}
	topicName := map[string]string{}
	for _, tp := range topics {
		topicName[tp.ID] = tp.Name
	}
	chanWord := func(k string) string {
		if k == string(channels.SMS) {
			return t.SMSWord
		}
		if k == string(channels.Email) {
			return t.EmailWord
		}
		return k
	}

	v := &prefView{T: t, Intro: strings.Replace(t.Intro, "%s", d.cfg.SenderName, 1), CSRF: d.prefCSRF(c.ID, d.cfg.Now())}
	for _, k := range channels.Kinds {
		addr := c.Address(k)
		if addr == "" {
			continue
		}
		pc := prefChannel{Legend: t.EmailLegend, Address: addr}
		if k == channels.SMS {
			pc.Legend = t.SMSLegend
		}
		for _, tp := range topics {
			f := storepkg.ConsentField(k, tp.ID)
			pt := prefTopic{InputID: "t-" + string(k) + "-" + tp.ID, Value: f, Name: tp.Name, Description: tp.Description}
			if tp.Kind == dispatcher.Transactional {
				pt.Transactional, pt.Checked = true, true
				v.HasTx = true
			} else {
				pt.Checked = cur[f].State == dispatcher.Granted
				v.HasMarketing = true
			}
			pc.Topics = append(pc.Topics, pt)
		}
		v.Channels = append(v.Channels, pc)
	}

	v.Profile = []prefRow{
		{t.Email, c.Email}, {t.Phone, c.Phone}, {t.Timezone, c.Timezone}, {t.Locale, c.Locale},
		{t.Tags, strings.Join(c.Tags, ", ")}, {t.Created, when(c.CreatedAt)}, {t.Updated, when(c.UpdatedAt)},
	}
	for i := range v.Profile {
		if v.Profile[i].Value == "" {
			v.Profile[i].Value = "—"
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Attributes)) {
		v.Attributes = append(v.Attributes, prefRow{k, c.Attributes[k]})
	}
	for _, f := range slices.Sorted(maps.Keys(cur)) {
		k, topic, _ := strings.Cut(f, "/")
		cc := cur[f]
		v.Consents = append(v.Consents, []string{chanWord(k), cmp.Or(topicName[topic], topic), word(t.States, string(cc.State)),
			when(cc.At), word(t.Sources, cc.Source)})
	}
	start := 0
	if len(ledger) > prefMaxHistory {
		start = len(ledger) - prefMaxHistory
		v.HistoryCut = strings.Replace(t.HistoryCut, "%d", strconv.Itoa(prefMaxHistory), 1)
	}
	for i := len(ledger) - 1; i >= start; i-- {
		e := ledger[i]
		var ev []string
		for _, k := range slices.Sorted(maps.Keys(e.Evidence)) {
			ev = append(ev, k+": "+e.Evidence[k])
		}
		v.History = append(v.History, []string{when(e.At), chanWord(string(e.Channel)), cmp.Or(topicName[e.Topic], e.Topic),
			word(t.States, string(e.State)), word(t.Sources, e.Source), strings.Join(ev, "; ")})
	}
	for _, k := range channels.Kinds {
		addr := c.Address(k)
		if addr == "" {
			continue
		}
		sup, err := s.Suppression(ctx, k, addr)
		if errors.Is(err, dispatcher.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		until := t.Permanent
		if !sup.Until.IsZero() {
			until = when(sup.Until)
		}
		v.Suppressions = append(v.Suppressions, []string{chanWord(string(k)), addr, word(t.Reasons, sup.Reason), when(sup.At), until})
	}
	return v, nil
}

var prefTmpl = template.Must(template.New("preferences").Parse(`<!doctype html>
<html lang="{{.T.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.T.Title}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a;background:#fff}
h1{font-size:1.7rem;margin:.5rem 0}
h2{font-size:1.3rem;margin:2rem 0 .5rem;border-bottom:2px solid #e2e2e2;padding-bottom:.25rem}
h3{font-size:1.05rem;margin:1.5rem 0 .4rem}
a{color:#0b4fa8}
.top{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap}
.banner{background:#e6f4ea;border:1px solid #1e7b34;color:#114d20;padding:.7rem 1rem;border-radius:.3rem;font-weight:600}
fieldset{border:1px solid #8a8a8a;border-radius:.4rem;margin:1rem 0;padding:.5rem 1rem 1rem}
legend{font-weight:700;padding:0 .3rem}
legend .addr{font-weight:400;color:#444}
.opt{display:flex;gap:.6rem;align-items:flex-start;margin:.6rem 0}
.opt input{width:1.25rem;height:1.25rem;margin:.15rem 0 0;flex:none;accent-color:#0b4fa8}
.opt label{font-weight:600}
.desc{display:block;font-weight:400;color:#444;font-size:.95rem}
.tag{display:inline-block;font-size:.8rem;font-weight:600;background:#eee;color:#333;border-radius:.8rem;padding:0 .5rem;margin-left:.3rem}
.note{color:#444;font-size:.95rem}
button{font:inherit;font-weight:600;padding:.6rem 1.2rem;border-radius:.3rem;border:2px solid #0b4fa8;background:#0b4fa8;color:#fff;cursor:pointer}
button.danger{background:#fff;color:#a1181d;border-color:#a1181d}
a:focus-visible,input:focus-visible,button:focus-visible{outline:3px solid #e8a317;outline-offset:2px}
.box{border:1px solid #d0d0d0;border-radius:.4rem;padding:.2rem 1rem 1rem;margin:1.5rem 0}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.95rem}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #ddd;overflow-wrap:anywhere}
th{background:#f3f3f3}
thead th{border-bottom:2px solid #bbb}
.val{white-space:pre-wrap}
</style>
</head>
<body>
<div class="top">
<h1>{{.T.Title}}</h1>
<a href="?lang={{.T.OtherLang}}" lang="{{.T.OtherLang}}" hreflang="{{.T.OtherLang}}">{{.T.SwitchLabel}}</a>
</div>
<p>{{.Intro}}</p>
{{if eq .Saved "1"}}<p class="banner" role="status">{{.T.SavedOne}}</p>{{else if eq .Saved "all"}}<p class="banner" role="status">{{.T.SavedAll}}</p>{{end}}

<h2>{{.T.TopicsTitle}}</h2>
{{if .Channels}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="do" value="save">
{{if .HasMarketing}}<p class="note">{{.T.TopicsIntro}}</p>{{end}}
{{range .Channels}}
<fieldset>
<legend>{{.Legend}} <span class="addr">— {{.Address}}</span></legend>
{{range .Topics}}
<div class="opt">
{{if .Transactional}}<input type="checkbox" id="{{.InputID}}" checked disabled aria-describedby="tx-note{{if .Description}} {{.InputID}}-d{{end}}">
<label for="{{.InputID}}">{{.Name}}<span class="tag">{{$.T.Always}}</span>{{if .Description}}<span class="desc" id="{{.InputID}}-d">{{.Description}}</span>{{end}}</label>
{{else}}<input type="hidden" name="shown" value="{{.Value}}">
<input type="checkbox" id="{{.InputID}}" name="on" value="{{.Value}}"{{if .Checked}} checked{{end}}{{if .Description}} aria-describedby="{{.InputID}}-d"{{end}}>
<label for="{{.InputID}}">{{.Name}}{{if .Description}}<span class="desc" id="{{.InputID}}-d">{{.Description}}</span>{{end}}</label>
{{end}}
</div>
{{else}}<p class="note">{{$.T.NoTopics}}</p>
{{end}}
</fieldset>
{{end}}
{{if .HasTx}}<p class="note" id="tx-note">{{.T.TransactionalNote}}</p>{{end}}
{{if .HasMarketing}}<p><button type="submit">{{.T.Save}}</button></p>{{end}}
</form>
{{if .HasMarketing}}
<section class="box" aria-labelledby="all-title">
<h3 id="all-title">{{.T.AllTitle}}</h3>
<p>{{.T.AllText}}</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="do" value="unsubscribe-all">
<button type="submit" class="danger">{{.T.AllButton}}</button>
</form>
</section>
{{end}}
{{else}}<p>{{.T.NoAddress}}</p>{{end}}

<h2>{{.T.DataTitle}}</h2>
<p class="note">{{.T.DataIntro}}</p>
<h3>{{.T.Profile}}</h3>
<table>
<tbody>
{{range .Profile}}<tr><th scope="row">{{.Name}}</th><td class="val">{{.Value}}</td></tr>
{{end}}</tbody>
</table>
<h3>{{.T.Attributes}}</h3>
{{if .Attributes}}<table>
<thead><tr><th scope="col">{{.T.Field}}</th><th scope="col">{{.T.Value}}</th></tr></thead>
<tbody>
{{range .Attributes}}<tr><th scope="row">{{.Name}}</th><td class="val">{{.Value}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p class="note">{{.T.None}}</p>{{end}}
<h3>{{.T.Consents}}</h3>
{{if .Consents}}<table>
<thead><tr><th scope="col">{{.T.Channel}}</th><th scope="col">{{.T.Topic}}</th><th scope="col">{{.T.State}}</th><th scope="col">{{.T.Since}}</th><th scope="col">{{.T.Source}}</th></tr></thead>
<tbody>
{{range .Consents}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{else}}<p class="note">{{.T.NoConsents}}</p>{{end}}
<h3>{{.T.History}}</h3>
{{if .History}}{{if .HistoryCut}}<p class="note">{{.HistoryCut}}</p>{{end}}<table>
<thead><tr><th scope="col">{{.T.When}}</th><th scope="col">{{.T.Channel}}</th><th scope="col">{{.T.Topic}}</th><th scope="col">{{.T.State}}</th><th scope="col">{{.T.Source}}</th><th scope="col">{{.T.Evidence}}</th></tr></thead>
<tbody>
{{range .History}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{else}}<p class="note">{{.T.NoHistory}}</p>{{end}}
<h3>{{.T.Suppressions}}</h3>
{{if .Suppressions}}<table>
<thead><tr><th scope="col">{{.T.Channel}}</th><th scope="col">{{.T.Address}}</th><th scope="col">{{.T.Reason}}</th><th scope="col">{{.T.Since}}</th><th scope="col">{{.T.Until}}</th></tr></thead>
<tbody>
{{range .Suppressions}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{else}}<p class="note">{{.T.NoSuppressions}}</p>{{end}}
</body>
</html>
`))

// writePrefPage renders v with the same headers as the other public
// pages: no script, no framing, no referrer (the URL holds the token).
func writePrefPage(w http.ResponseWriter, v *prefView) {
	var buf bytes.Buffer
	if err := prefTmpl.Execute(&buf, v); err != nil {
		writePage(w, http.StatusInternalServerError, errorPage)
		return
	}
	pageHeaders(w, false)
	w.Header().Set("Content-Language", v.T.Lang)
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}
