package store

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// Campaign analytics: what became of the messages of a run and of a
// topic, over time and per mailbox provider, the way mailbox providers
// judge a sender. Nothing here is about a person: no opens, no clicks, no
// list of who got what. Counters move where the outcomes are already
// counted, in the same round trip (a settlement of the send path, a
// piece of feedback), one command per counted key and call, whatever the
// number of messages in the call.
//
//	P:run:{r}:an             hash: h<unix hour>:<metric>, d:<domain>:<metric> and,
//	                         for API and confirmation sends, d:<domain>:rcpt (distinct
//	                         recipients), kept AnalyticsRetention past its last change
//	P:run:{r}:an:rc:<domain> HyperLogLog of the recipients of a run's API or
//	                         confirmation sends at a domain, a week after its last change
//	P:topican:{t}:<yyyymmdd> hash of one UTC day of a topic: <metric>,
//	                         d:<domain>:<metric> and r:<run> (the runs that
//	                         counted that day), kept AnalyticsRetention past the day
//
// Metrics are <channel>.<outcome> (MetricEmailSent...) and unsubscribed,
// which is counted whatever the channel: an unsubscribe from a page or a
// link does not always say which channel's message led to it.

// Metrics counted in the analytics.
const (
	MetricEmailSent        = "email.sent"         // handed to the relay, which took it or refused it for the recipient
	MetricEmailDelivered   = "email.delivered"    // a delivery report came back
	MetricEmailBouncedHard = "email.bounced_hard" // the address does not exist (5.x.x)
	MetricEmailBouncedSoft = "email.bounced_soft" // a temporary refusal the relay gave up on
	MetricEmailComplained  = "email.complained"   // the recipient reported it as spam
	MetricSMSSent          = "sms.sent"
	MetricSMSDelivered     = "sms.delivered"
	MetricSMSUndelivered   = "sms.undelivered" // unreachable, unknown or filtered number
	MetricSMSOptedOut      = "sms.opted_out"   // the carrier says the number replied STOP
	MetricUnsubscribed     = "unsubscribed"    // consents withdrawn from a message, any channel
)

// AnalyticsRetention is how long analytics counters are kept by default:
// a topic's day for 400 days after it, a run's for 400 days after its
// last event.
const AnalyticsRetention = 400 * 24 * time.Hour

// DefaultMinDomainRecipients is the k of the domain folding: a domain
// with fewer recipients in a report is shown as "other".
const DefaultMinDomainRecipients = 10

// OtherDomain collects the domains below the k threshold and addresses
// whose domain cannot be told.
const OtherDomain = "other"

// Event is one outcome of one message, counted in the analytics of its
// run (when Run is set) and of its topic (when Topic is set).
type Event struct {
	Run, Topic string
	// Metric is one of the Metric constants.
	Metric string
	// Domain is the ProviderGroup of the recipient's address (email
	// only), "" for none: then the event is counted in the series only.
	Domain string
	// Recipient, set on the sends of a run that may reach one person more
	// than once (API and confirmation sends), names the recipient (a
	// contact id), so that the run counts its distinct recipients per
	// domain; a campaign run sends once per recipient and needs none. It
	// is kept only as a HyperLogLog, which cannot give it back.
	Recipient string
}

// providerGroups groups the domains of the large mailbox providers, whose
// reputation systems see them as one.
var providerGroups = map[string]string{
	"gmail.com": "gmail", "googlemail.com": "gmail",
	"outlook.com": "microsoft", "outlook.fr": "microsoft", "hotmail.com": "microsoft", "hotmail.fr": "microsoft",
	"hotmail.co.uk": "microsoft", "live.com": "microsoft", "live.fr": "microsoft", "msn.com": "microsoft",
	"yahoo.com": "yahoo", "yahoo.fr": "yahoo", "yahoo.co.uk": "yahoo", "ymail.com": "yahoo", "rocketmail.com": "yahoo",
	"aol.com": "aol", "aol.fr": "aol",
	"icloud.com": "apple", "me.com": "apple", "mac.com": "apple",
	"orange.fr": "orange", "wanadoo.fr": "orange",
	"free.fr": "free",
	"sfr.fr":  "sfr", "neuf.fr": "sfr",
	"laposte.net": "laposte",
	"bbox.fr":     "bouygues",
	"gmx.de":      "gmx", "gmx.net": "gmx", "gmx.fr": "gmx", "gmx.com": "gmx",
	"web.de":    "web.de",
	"proton.me": "proton", "protonmail.com": "proton", "pm.me": "proton",
}

// ProviderGroup returns what the analytics count an email address under:
// its mailbox provider for the large ones (gmail for gmail.com and
// googlemail.com, microsoft for outlook, hotmail, live and msn...), else
// its domain in lower case, or OtherDomain when it has none that can be
// told. Only this, never the address, is kept with a send.
func ProviderGroup(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return OtherDomain
	}
	d := strings.TrimSuffix(strings.ToLower(addr[i+1:]), ".")
	if g, ok := providerGroups[d]; ok {
		return g
	}
	if len(d) < 3 || len(d) > 253 || !strings.Contains(d, ".") {
		return OtherDomain
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return OtherDomain
		}
	}
	return d
}

// SendDomainField is the field of a send record that keeps the
// ProviderGroup of its recipient, written when the message leaves, so
// that feedback arriving later is counted under it whatever became of the
// contact.
const SendDomainField = "dom"

// countScript adds increments to fields of one hash and sets when it
// expires. KEYS: the hash. ARGV: expiry (unix s), then field, increment
// pairs.
var countScript = redis.NewScript(`
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i+1])
end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return 1
`)

// recipientsScript counts distinct recipients per domain of a run: it adds
// them to each domain's HyperLogLog and raises the domain's rcpt field of
// the run's hash to the HyperLogLog's count (never lowers it: a
// HyperLogLog expired while the run still sends starts again from none).
// KEYS: the run's analytics hash, then one HyperLogLog per domain. ARGV:
// its TTL in seconds, then per HyperLogLog: the hash's field, the number n
// of recipients, the n recipients.
var recipientsScript = redis.NewScript(`
local a = 2
for i = 2, #KEYS do
  local field, n = ARGV[a], tonumber(ARGV[a+1])
  redis.call('PFADD', KEYS[i], unpack(ARGV, a+2, a+1+n))
  redis.call('EXPIRE', KEYS[i], ARGV[1])
  local c = redis.call('PFCOUNT', KEYS[i])
  if c > tonumber(redis.call('HGET', KEYS[1], field) or '0') then
    redis.call('HSET', KEYS[1], field, c)
  end
  a = a + 2 + n
end
return 1
`)

// recipientsTTL is how long a run's HyperLogLogs of recipients live
// after their last change: past the day of a run of single sends.
const recipientsTTL = 7 * 24 * time.Hour

func (s *Store) runAnalyticsKey(run string) string { return s.RunKey(run) + ":an" }

// topicAnalyticsKey names a topic's counters of the UTC day of t.
func (s *Store) topicAnalyticsKey(topic string, t time.Time) string {
	return s.p + ":topican:{" + topic + "}:" + t.UTC().Format("20060102")
}

func (s *Store) analyticsRetention() time.Duration {
	return cmp.Or(s.AnalyticsRetention, AnalyticsRetention)
}

// countKey is what a call adds to one analytics hash: its increments, in
// field order, and when it expires.
type countKey struct {
	key    string
	expire int64
	fields map[string]int64
	// run is the run whose slot the hash lives in ("" for a topic's day,
	// in a slot of its own).
	run string
}

// args are the count's arguments to countScript and the transition
// script: expiry, then field, increment pairs in field order.
func (c *countKey) args() []any {
	args := make([]any, 1, 1+2*len(c.fields))
	args[0] = c.expire
	for _, f := range slices.Sorted(maps.Keys(c.fields)) {
		args = append(args, f, c.fields[f])
	}
	return args
}

// eventCounts are the counters of a list of events: the increments of
// each hash, in the order first met, and the distinct recipients per run
// and domain of the runs that count them.
type eventCounts struct {
	keys     []*countKey
	rcpts    map[string]map[string][]any
	rcptRuns []string
}

// tally adds up the counters of evs at the store's clock.
func (s *Store) tally(evs []Event) *eventCounts {
	now := s.now()
	hour := "h" + strconv.FormatInt(now.Unix()/3600, 10) + ":"
	// A run's counters are kept past their last change, a topic's day's
	// past the day.
	runExpire := now.Add(s.analyticsRetention()).Unix()
	dayExpire := now.UTC().Truncate(24 * time.Hour).Add(24*time.Hour + s.analyticsRetention()).Unix()
	ec := &eventCounts{rcpts: map[string]map[string][]any{}}
	byKey := map[string]*countKey{}
	add := func(key, run string, expire int64, field string) {
		m, ok := byKey[key]
		if !ok {
			m = &countKey{key: key, run: run, expire: expire, fields: map[string]int64{}}
			byKey[key] = m
			ec.keys = append(ec.keys, m)
		}
		m.fields[field]++
	}
	var topicKey, topicOf string // the key of the last topic met
	for _, e := range evs {
		if e.Metric == "" {
			continue
		}
		var dom string
		if e.Domain != "" {
			_, outcome, _ := strings.Cut(e.Metric, ".")
			dom = "d:" + e.Domain + ":" + outcome
		}
		if e.Run != "" {
			k := s.runAnalyticsKey(e.Run)
			add(k, e.Run, runExpire, hour+e.Metric)
			if dom != "" {
				add(k, e.Run, runExpire, dom)
			}
			if e.Recipient != "" && e.Domain != "" {
				if ec.rcpts[e.Run] == nil {
					ec.rcpts[e.Run] = map[string][]any{}
					ec.rcptRuns = append(ec.rcptRuns, e.Run)
				}
				ec.rcpts[e.Run][e.Domain] = append(ec.rcpts[e.Run][e.Domain], e.Recipient)
			}
		}
		if e.Topic != "" {
			if e.Topic != topicOf {
				topicKey, topicOf = s.topicAnalyticsKey(e.Topic, now), e.Topic
			}
			add(topicKey, "", dayExpire, e.Metric)
			if e.Run != "" {
				add(topicKey, "", dayExpire, "r:"+e.Run)
			}
			if dom != "" {
				add(topicKey, "", dayExpire, dom)
			}
		}
	}
	return ec
}

// countEvents queues on p the counters of evs, at the store's clock: one
// script call per run and per topic, however many events.
func (s *Store) countEvents(ctx context.Context, p redis.Pipeliner, evs []Event) {
	if len(evs) == 0 {
		return
	}
	s.queueCounts(ctx, p, s.tally(evs), nil)
}

// queueCounts queues on p the counts of ec but those of the keys in
// skip, which ride another script call.
func (s *Store) queueCounts(ctx context.Context, p redis.Pipeliner, ec *eventCounts, skip map[*countKey]bool) {
	for _, m := range ec.keys {
		if skip[m] {
			continue
		}
		// EVAL, not EVALSHA: the call rides pipelines whose other script
		// calls are run again when Redis forgot them (scriptPipeline),
		// and a count must never run twice.
		countScript.Eval(ctx, p, []string{m.key}, m.args()...)
	}
	for _, run := range ec.rcptRuns {
		hash := s.runAnalyticsKey(run)
		keys := []string{hash}
		args := []any{int64(recipientsTTL.Seconds())}
		for _, d := range slices.Sorted(maps.Keys(ec.rcpts[run])) {
			keys = append(keys, hash+":rc:"+d)
			args = append(args, "d:"+d+":"+recipientsField, len(ec.rcpts[run][d]))
			args = append(args, ec.rcpts[run][d]...)
		}
		recipientsScript.Eval(ctx, p, keys, args...)
	}
}

// recipientsField is the outcome name under which a run keeps its
// distinct recipients at a domain, when it counts them.
const recipientsField = "rcpt"

// CountEvents counts evs in the analytics, in one round trip.
func (s *Store) CountEvents(ctx context.Context, evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		s.countEvents(ctx, p, evs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("count analytics: %w", err)
	}
	return nil
}

// EmailCounts are the outcomes of emails.
type EmailCounts struct {
	Sent        int64 `json:"sent"`
	Delivered   int64 `json:"delivered"`
	BouncedHard int64 `json:"bounced_hard"`
	BouncedSoft int64 `json:"bounced_soft"`
	Complained  int64 `json:"complained"`
}

// SMSCounts are the outcomes of text messages.
type SMSCounts struct {
	Sent        int64 `json:"sent"`
	Delivered   int64 `json:"delivered"`
	Undelivered int64 `json:"undelivered"`
	OptedOut    int64 `json:"opted_out"`
}

// Counts are the outcomes of a run's or a topic's messages over a period.
type Counts struct {
	Email EmailCounts `json:"email"`
	SMS   SMSCounts   `json:"sms"`
	// Unsubscribed counts the consents withdrawn from a message (its
	// link, the preference page it led to, a STOP, a mailbox provider's
	// unsubscribe), whatever the channel.
	Unsubscribed int64 `json:"unsubscribed"`
}

// countFields are the fields of Counts by metric.
var countFields = map[string]func(*Counts) *int64{
	MetricEmailSent:        func(c *Counts) *int64 { return &c.Email.Sent },
	MetricEmailDelivered:   func(c *Counts) *int64 { return &c.Email.Delivered },
	MetricEmailBouncedHard: func(c *Counts) *int64 { return &c.Email.BouncedHard },
	MetricEmailBouncedSoft: func(c *Counts) *int64 { return &c.Email.BouncedSoft },
	MetricEmailComplained:  func(c *Counts) *int64 { return &c.Email.Complained },
	MetricSMSSent:          func(c *Counts) *int64 { return &c.SMS.Sent },
	MetricSMSDelivered:     func(c *Counts) *int64 { return &c.SMS.Delivered },
	MetricSMSUndelivered:   func(c *Counts) *int64 { return &c.SMS.Undelivered },
	MetricSMSOptedOut:      func(c *Counts) *int64 { return &c.SMS.OptedOut },
	MetricUnsubscribed:     func(c *Counts) *int64 { return &c.Unsubscribed },
}

// add adds n to the counter of metric; it reports false for a metric it
// does not know.
func (c *Counts) add(metric string, n int64) bool {
	field, ok := countFields[metric]
	if ok {
		*field(c) += n
	}
	return ok
}

func (c *Counts) plus(o Counts) {
	for _, field := range countFields {
		*field(c) += *field(&o)
	}
}

func (e *EmailCounts) plus(o EmailCounts) {
	c := Counts{Email: *e}
	c.plus(Counts{Email: o})
	*e = c.Email
}

// Complaint rate thresholds of Gmail's and Yahoo's sender guidelines.
const (
	// ComplaintRateLimit: "avoid ever reaching a spam rate of 0.30% or
	// higher" (Google); "keep spam complaint rates below 0.3%" (Yahoo).
	ComplaintRateLimit = 0.003
	// ComplaintRateRecommended: "keep spam rates reported in Postmaster
	// Tools below 0.10%" (Google).
	ComplaintRateRecommended = 0.001
)

// Complaint levels, from the thresholds.
const (
	LevelNoData           = "no_data"           // nothing accepted yet: no rate
	LevelOK               = "ok"                // below 0.1 %
	LevelAboveRecommended = "above_recommended" // 0.1 % or more
	LevelAboveLimit       = "above_limit"       // 0.3 % or more
)

// Rates are the ratios mailbox providers judge a sender by, as fractions
// (0.003 is 0.3 %); nil when their denominator is 0.
//
// BounceRate is hard bounces over emails sent. ComplaintRate is spam
// complaints over emails accepted (sent minus hard and soft bounces), the
// closest Missive can measure to the base of Gmail's and Yahoo's
// thresholds: Google's Postmaster Tools define the spam rate as "the
// percentage of emails marked as spam by users vs emails sent to the
// inbox for active users" (Postmaster Tools help, spam rate dashboard),
// Google's email sender guidelines (support.google.com/a/answer/81126)
// ask to keep it below 0.10 % and never reach 0.30 %, and Yahoo's sender
// best practices (senders.yahooinc.com/best-practices) ask to keep
// complaints below 0.3 %. Missive does not know which messages reached an
// inbox rather than a spam folder, so its rate is at most theirs: read a
// rate near a threshold as past it. Gmail sends no complaint report per
// message (its rate is in Postmaster Tools only), so gmail's complaints
// here are those other intakes saw. UnsubscribeRate is
// unsubscribes over messages that reached their recipient (emails
// accepted, SMS sent and not undelivered).
type Rates struct {
	BounceRate      *float64 `json:"bounce_rate"`
	ComplaintRate   *float64 `json:"complaint_rate"`
	UnsubscribeRate *float64 `json:"unsubscribe_rate"`
	// ComplaintLevel places ComplaintRate against the thresholds:
	// no_data, ok, above_recommended (0.1 % or more), above_limit (0.3 %
	// or more).
	ComplaintLevel string `json:"complaint_level"`
}

func ratio(n, d int64) *float64 {
	if d <= 0 {
		return nil
	}
	r := float64(n) / float64(d)
	return &r
}

// complaintLevel places a complaint rate against the thresholds.
func complaintLevel(r *float64) string {
	switch {
	case r == nil:
		return LevelNoData
	case *r >= ComplaintRateLimit:
		return LevelAboveLimit
	case *r >= ComplaintRateRecommended:
		return LevelAboveRecommended
	}
	return LevelOK
}

// RatesOf computes the rates of c.
func RatesOf(c Counts) Rates {
	accepted := c.Email.Sent - c.Email.BouncedHard - c.Email.BouncedSoft
	reached := max(accepted, 0) + max(c.SMS.Sent-c.SMS.Undelivered, 0)
	r := Rates{
		BounceRate:      ratio(c.Email.BouncedHard, c.Email.Sent),
		ComplaintRate:   ratio(c.Email.Complained, accepted),
		UnsubscribeRate: ratio(c.Unsubscribed, reached),
	}
	r.ComplaintLevel = complaintLevel(r.ComplaintRate)
	return r
}

// Bucket is what happened in one hour (a run) or one UTC day (a topic).
type Bucket struct {
	Start time.Time `json:"start"`
	Counts
}

// DomainCounts are the email outcomes at one mailbox provider or domain,
// with the rates that provider judges by.
type DomainCounts struct {
	// Domain is a ProviderGroup, or OtherDomain.
	Domain string `json:"domain"`
	EmailCounts
	BounceRate *float64 `json:"bounce_rate"`
	// ComplaintRate and ComplaintLevel are as in Rates.
	ComplaintRate  *float64 `json:"complaint_rate"`
	ComplaintLevel string   `json:"complaint_level"`
}

// domainTally is a domain's counts while a report is read, with the
// distinct recipients a run of single sends counted, when counted is set.
type domainTally struct {
	DomainCounts
	recipients int64
	counted    bool
}

func (d *domainTally) add(outcome string, n int64) {
	if outcome == recipientsField {
		d.recipients, d.counted = n, true
		return
	}
	// An outcome is counted as in the totals, which know the metrics.
	c := Counts{Email: d.EmailCounts}
	if c.add("email."+outcome, n) {
		d.EmailCounts = c.Email
	}
}

// Report is the analytics of a run or of a topic over a period.
type Report struct {
	Run   string `json:"run,omitempty"`
	Topic string `json:"topic,omitempty"`
	// From and To bound a topic's report: the first and the last UTC day,
	// both included.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Bucket is the span of each element of Series: "hour" for a run,
	// "day" for a topic (UTC). Buckets without events are left out.
	Bucket string   `json:"bucket"`
	Series []Bucket `json:"series"`
	Totals Counts   `json:"totals"`
	Rates  Rates    `json:"rates"`
	// Domains are the email outcomes per mailbox provider or domain, the
	// most sent first; a domain with fewer than MinDomainRecipients
	// recipients in the report (for a topic, in the largest run of the
	// period) is counted in "other" (last), so that a small
	// organisation's domain cannot point at a person.
	Domains             []DomainCounts `json:"domains"`
	MinDomainRecipients int            `json:"min_domain_recipients"`
}

// RunAnalytics returns the analytics of a run: hourly series, totals,
// rates and domains, with domains of fewer than k recipients folded into
// "other" (k < 1: DefaultMinDomainRecipients). A run sends one email per
// recipient, so a domain's emails sent are its recipients. A run without
// events has an empty report; whether the run exists is the caller's to
// check.
func (s *Store) RunAnalytics(ctx context.Context, run string, k int) (*Report, error) {
	m, err := s.Redis.HGetAll(ctx, s.runAnalyticsKey(run)).Result()
	if err != nil {
		return nil, fmt.Errorf("run analytics: %w", err)
	}
	rep := &Report{Run: run, Bucket: "hour"}
	hours := map[int64]*Counts{}
	domains := map[string]*domainTally{}
	for f, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		if rest, ok := strings.CutPrefix(f, "d:"); ok {
			addDomain(domains, rest, n)
			continue
		}
		h, metric, ok := strings.Cut(strings.TrimPrefix(f, "h"), ":")
		hour, err := strconv.ParseInt(h, 10, 64)
		if !ok || err != nil {
			continue
		}
		c := hours[hour]
		if c == nil {
			c = &Counts{}
			hours[hour] = c
		}
		c.add(metric, n)
	}
	for _, h := range slices.Sorted(maps.Keys(hours)) {
		rep.Series = append(rep.Series, Bucket{Start: time.Unix(h*3600, 0).UTC(), Counts: *hours[h]})
	}
	rep.finish(domains, k, (*domainTally).recipientsOfRun)
	return rep, nil
}

// recipientsOfRun is how many people a run's figures at a domain are
// about: its emails sent there, one per recipient, unless the run counted
// its distinct recipients (single sends, where one person may get
// several).
func (d *domainTally) recipientsOfRun() int64 {
	if d.counted {
		return d.recipients
	}
	return d.Sent
}

// MaxAnalyticsDays bounds a topic report's period.
const MaxAnalyticsDays = 400

// TopicAnalytics returns the analytics of a topic over the UTC days from
// from to to, both included: daily series, totals, rates and domains. A
// domain is shown only when one run counted in the period reached k of
// its recipients or more (k < 1: DefaultMinDomainRecipients), else it is
// folded into "other": Missive keeps no list of who got what, and
// messages are not people (a person who got ten messages of the topic is
// ten messages), but a run sends one email per recipient, so the largest
// run is a count of people the domain's figures are about. It returns an error with code invalid
// (field "from") when from is after to or the period is longer than
// MaxAnalyticsDays.
func (s *Store) TopicAnalytics(ctx context.Context, topic string, from, to time.Time, k int) (*Report, error) {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	days := int(to.Sub(from)/(24*time.Hour)) + 1
	if days < 1 || days > MaxAnalyticsDays {
		return nil, dispatcher.Invalid("from", "must be on or before to, at most %d days before it", MaxAnalyticsDays)
	}
	cmds := make([]*redis.MapStringStringCmd, days)
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range days {
			cmds[i] = p.HGetAll(ctx, s.topicAnalyticsKey(topic, from.AddDate(0, 0, i)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("topic analytics: %w", err)
	}
	rep := &Report{Topic: topic, Bucket: "day", From: from.Format(time.DateOnly), To: to.Format(time.DateOnly)}
	domains := map[string]*domainTally{}
	runs := map[string]bool{}
	for i, cmd := range cmds {
		var c Counts
		seen := false
		for f, v := range cmd.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			if rest, ok := strings.CutPrefix(f, "d:"); ok {
				addDomain(domains, rest, n)
				continue
			}
			if run, ok := strings.CutPrefix(f, "r:"); ok {
				runs[run] = true
				continue
			}
			seen = c.add(f, n) || seen
		}
		if seen {
			rep.Series = append(rep.Series, Bucket{Start: from.AddDate(0, 0, i), Counts: c})
		}
	}
	largest, err := s.largestRuns(ctx, slices.Sorted(maps.Keys(runs)), slices.Sorted(maps.Keys(domains)))
	if err != nil {
		return nil, fmt.Errorf("topic analytics: %w", err)
	}
	rep.finish(domains, k, func(d *domainTally) int64 { return largest[d.Domain] })
	return rep, nil
}

// largestRuns returns, for each of domains, the most recipients one of
// runs sent an email to there.
func (s *Store) largestRuns(ctx context.Context, runs, domains []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(runs) == 0 || len(domains) == 0 {
		return out, nil
	}
	fields := make([]string, 0, 2*len(domains))
	for _, d := range domains {
		fields = append(fields, "d:"+d+":sent", "d:"+d+":"+recipientsField)
	}
	cmds, err := pipelineEach(ctx, s, runs, func(p redis.Pipeliner, r string) *redis.SliceCmd {
		return p.HMGet(ctx, s.runAnalyticsKey(r), fields...)
	})
	if err != nil {
		return nil, err
	}
	for _, cmd := range cmds {
		vals := cmd.Val()
		for i, d := range domains {
			var c domainTally
			for j, outcome := range []string{"sent", recipientsField} {
				if str, ok := vals[2*i+j].(string); ok {
					n, _ := strconv.ParseInt(str, 10, 64)
					c.add(outcome, n)
				}
			}
			out[d] = max(out[d], c.recipientsOfRun())
		}
	}
	return out, nil
}

// addDomain adds a "<domain>:<outcome>" field's count.
func addDomain(domains map[string]*domainTally, f string, n int64) {
	i := strings.LastIndexByte(f, ':')
	if i <= 0 {
		return
	}
	name := f[:i]
	d := domains[name]
	if d == nil {
		d = &domainTally{DomainCounts: DomainCounts{Domain: name}}
		domains[name] = d
	}
	d.add(f[i+1:], n)
}

// finish sums the series, computes the rates and folds into "other" the
// domains whose recipients, as counted by recipients, are below k.
func (r *Report) finish(domains map[string]*domainTally, k int, recipients func(*domainTally) int64) {
	if k < 1 {
		k = DefaultMinDomainRecipients
	}
	r.MinDomainRecipients = k
	if r.Series == nil {
		r.Series = []Bucket{}
	}
	for _, b := range r.Series {
		r.Totals.plus(b.Counts)
	}
	r.Rates = RatesOf(r.Totals)
	other := &DomainCounts{Domain: OtherDomain}
	r.Domains = []DomainCounts{}
	for _, d := range domains {
		if d.Domain == OtherDomain || recipients(d) < int64(k) {
			other.EmailCounts.plus(d.EmailCounts)
			continue
		}
		r.Domains = append(r.Domains, d.DomainCounts)
	}
	slices.SortFunc(r.Domains, func(a, b DomainCounts) int {
		return cmp.Or(cmp.Compare(b.Sent, a.Sent), strings.Compare(a.Domain, b.Domain))
	})
	if *other != (DomainCounts{Domain: OtherDomain}) {
		r.Domains = append(r.Domains, *other)
	}
	for i := range r.Domains {
		d := &r.Domains[i]
		rates := RatesOf(Counts{Email: d.EmailCounts})
		d.BounceRate, d.ComplaintRate, d.ComplaintLevel = rates.BounceRate, rates.ComplaintRate, rates.ComplaintLevel
	}
}

// FeedbackMetric is the metric a piece of feedback of kind f about a
// message on channel k counts in, "" for none. Unsubscribes are counted
// with the feedback counters (CountFeedback), not here.
func FeedbackMetric(k channels.Kind, f channels.FeedbackKind) string {
	if k == channels.SMS {
		switch f {
		case channels.Delivered:
			return MetricSMSDelivered
		case channels.HardBounce, channels.SoftBounce, channels.Undelivered:
			return MetricSMSUndelivered
		case channels.OptedOut:
			return MetricSMSOptedOut
		}
		return ""
	}
	switch f {
	case channels.Delivered:
		return MetricEmailDelivered
	case channels.HardBounce:
		return MetricEmailBouncedHard
	case channels.SoftBounce:
		return MetricEmailBouncedSoft
	case channels.Complaint:
		return MetricEmailComplained
	}
	return ""
}

// SentMetric is the metric of a message of channel k that left.
func SentMetric(k channels.Kind) string {
	if k == channels.SMS {
		return MetricSMSSent
	}
	return MetricEmailSent
}
