package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/outbox"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/api"
	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

// demo seeds contacts, runs one campaign on email and SMS end to end and
// shows what the gate decided.
func demo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var keepServing bool
	var n int
	c, err := parseConfig("demo", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&keepServing, "serve", false, "keep the HTTP server up after the run and print an unsubscribe link to click")
		fs.IntVar(&n, "contacts", 2000, "number of contacts to seed")
	})
	if err != nil {
		return err
	}
	if getenv("MISSIVE_LOG_LEVEL") == "" && c.LogLevel == "info" {
		c.LogLevel = "warn" // keep the demo's screen for the demo
	}
	if getenv("MISSIVE_PREFIX") == "" && c.Prefix == "missive" {
		c.Prefix = "missive-demo"
	}
	if err := c.validate(true); err != nil {
		return err
	}
	if n < 10 || n > 1_000_000 {
		return errors.New("--contacts: from 10 to 1000000")
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if c.Secret != "" {
		secret = []byte(c.Secret)
	}
	start := time.Now()
	a, err := newApp(ctx, c, secret, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if c.RedisURL != "" && c.RedisURL != memoryRedis {
		if err := store.WipePrefix(ctx, a.rdb, c.Prefix); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Using the Redis at MISSIVE_REDIS_URL, keys under %q (cleared first).\n", c.Prefix+":")
	} else {
		fmt.Fprintln(stdout, "Using an in-process Redis (set MISSIVE_REDIS_URL to use a real one).")
	}

	members, err := seed(ctx, a, n, stdout)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	camp := &dispatcher.Campaign{
		ID: "autumn-news", Name: "Autumn news", Topic: "newsletter", Segment: "customers",
		Channels:  []channels.Kind{channels.Email, channels.SMS},
		Templates: map[channels.Kind]string{channels.Email: "newsletter-email", channels.SMS: "newsletter-sms"},
	}
	if err := a.d.Pipeline.CreateCampaign(ctx, camp); err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- a.d.Pipeline.RunWorker(wctx) }()
	defer func() { stopWorker(); <-workerDone }()

	run, err := a.d.Pipeline.StartRun(ctx, camp.ID, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nCampaign %q: %d contacts in segment x 2 channels\n", camp.ID, members)
	r, err := follow(ctx, a.d, run, int64(members*2), stdout)
	if err != nil {
		return err
	}
	stopWorker()
	<-workerDone
	workerDone <- nil

	if err := report(ctx, a, r, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nDone in %s.\n", time.Since(start).Round(100*time.Millisecond))
	if !keepServing {
		fmt.Fprintln(stdout, "Run with --serve to keep the HTTP server up and click an unsubscribe link.")
		return nil
	}
	return demoServe(ctx, a, run, stdout)
}

// follow shows progress until every send is settled or deferred: a bar on
// a terminal, a line a second otherwise.
func follow(ctx context.Context, d *apppkg.Dispatcher, run string, total int64, stdout io.Writer) (*dispatcher.Run, error) {
	show := func(done int64) {}
	finish := func() {}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(stdout),
			progressbar.OptionSetDescription("gate and send"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
		show = func(done int64) { _ = bar.Set64(done) }
		finish = func() { _ = bar.Finish(); fmt.Fprintln(stdout) }
	} else {
		last := time.Now()
		show = func(done int64) {
			if time.Since(last) >= time.Second {
				fmt.Fprintf(stdout, "gate and send: %d/%d\n", done, total)
				last = time.Now()
			}
		}
		finish = func() { fmt.Fprintf(stdout, "gate and send: %d/%d\n", total, total) }
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r, err := d.Store.Run(ctx, run)
		if err != nil {
			return nil, err
		}
		cn := r.Counters
		show(min(cn["planned"]-cn["queued"]-cn["sending"], total))
		if r.State == dispatcher.RunCompleted || (cn["planned"] >= total && cn["queued"]+cn["sending"] == 0) {
			finish()
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, errors.New("the run did not finish in 5 minutes")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// report prints the decisions and outcomes per reason, and the outbox.
func report(ctx context.Context, a *app, r *dispatcher.Run, stdout io.Writer) error {
	dec, err := a.d.Store.Decisions(ctx, r.ID)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(r.Counters))
	for k := range r.Counters {
		if k != "planned" {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(x, y string) int { return int(r.Counters[y] - r.Counters[x]) })
	fmt.Fprintf(stdout, "\nRun %s: %d messages planned, balanced: %v\n\n", r.ID, r.Counters["planned"], r.Balanced)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "outcome\tnow\tat the gate\t")
	for _, k := range names {
		d := "-"
		if v, ok := dec[k]; ok {
			d = fmt.Sprint(v)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", k, r.Counters[k], d)
	}
	if v := dec["queued"]; v > 0 {
		fmt.Fprintf(tw, "passed, queued\t-\t%d\t\n", v)
	}
	tw.Flush()
	if r.Counters["deferred"] > 0 {
		fmt.Fprintln(stdout, "\ndeferred: outside the recipient's quiet-hours window (SMS: Mon-Sat 08:00-20:00 local time,\nno public holidays); they leave at the next open minute.")
	}
	if a.viaOutbox[channels.Email] || a.viaOutbox[channels.SMS] {
		dir, _ := filepath.Abs(a.cfg.OutboxDir)
		fmt.Fprintf(stdout, "\nOutbox: %s\n  one .eml file per email, one line of %s per SMS\n", dir, outbox.SMSFile)
	}
	return nil
}

// demoServe keeps the API up and prints a link to click.
func demoServe(ctx context.Context, a *app, run string, stdout io.Writer) error {
	id := "c00001"
	link, err := a.d.Pipeline.UnsubscribeURL(id, channels.Email, "newsletter", dispatcher.SendID(run, id, channels.Email))
	if err != nil {
		return err
	}
	key := make([]byte, 12)
	_, _ = rand.Read(key)
	apiKey := fmt.Sprintf("demo%x", key)
	keys := []api.APIKey{{ID: "demo", Secret: apiKey}}
	fmt.Fprintf(stdout, "\nUnsubscribe link of contact %s (open it in a browser):\n  %s\n", id, link)
	fmt.Fprintf(stdout, "API key for this session: %s\n  curl -H 'Authorization: Bearer %s' %s/v1/campaigns/autumn-news/stats\n", apiKey, apiKey, a.cfg.PublicURL)
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	return a.run(ctx, roleAPI|roleWorker|roleScheduler, keys, stdout)
}

// seed creates topics, templates, a segment and n contacts over several
// time zones with mixed consent, suppressions and recent sends. It returns
// how many contacts the segment holds.
func seed(ctx context.Context, a *app, n int, stdout io.Writer) (int, error) {
	s := a.d.Store
	for _, t := range []dispatcher.Topic{
		{ID: "newsletter", Name: "Newsletter", Kind: dispatcher.Marketing, Description: "News and offers, monthly"},
		{ID: "orders", Name: "Orders", Kind: dispatcher.Transactional, Description: "Order and delivery updates"},
	} {
		if err := s.PutTopic(ctx, &t); err != nil {
			return 0, err
		}
	}
	if err := s.PutTemplate(ctx, &templates.Template{ID: "newsletter-email", Email: &templates.Email{
		Subject: `{{if eq .Locale "fr"}}Les nouveautés d'automne{{else}}What's new this autumn{{end}}, {{default "" .Attr.first_name}}`,
		HTML: `<h1>{{if eq .Locale "fr"}}Bonjour{{else}}Hello{{end}} {{default "" .Attr.first_name}}</h1>
<p>{{if eq .Locale "fr"}}Voici nos nouveautés de la saison.{{else}}Here is what is new this season.{{end}}</p>`,
		Text: `{{if eq .Locale "fr"}}Bonjour{{else}}Hello{{end}} {{default "" .Attr.first_name}},
{{if eq .Locale "fr"}}Voici nos nouveautés de la saison.{{else}}Here is what is new this season.{{end}}`,
	}}); err != nil {
		return 0, err
	}
	if err := s.PutTemplate(ctx, &templates.Template{ID: "newsletter-sms", SMS: &templates.SMS{
		Body: `{{if eq .Locale "fr"}}Nouveautés d'automne en boutique, {{default "" .Attr.first_name}} !{{else}}Autumn news in store, {{default "" .Attr.first_name}}!{{end}}`,
	}}); err != nil {
		return 0, err
	}
	if err := s.PutSegment(ctx, &dispatcher.Segment{ID: "customers", TagsAll: []string{"customer"}, TagsNone: []string{"staff"}}); err != nil {
		return 0, err
	}

	rng := mrand.New(mrand.NewPCG(42, 2026))
	names := []string{"Camille", "Louis", "Chloé", "Hugo", "Emma", "Noah", "Olivia", "Liam", "Yuki", "Mia", "Ben", "Léa"}
	type zone struct {
		phone  func() string
		locale string
	}
	digits := func(k int) string {
		var b strings.Builder
		for range k {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		return b.String()
	}
	zones := []zone{
		{func() string { return "+336" + digits(8) }, "fr"},
		{func() string { return "+337" + digits(8) }, "fr"},
		{func() string { return "+447911" + digits(6) }, "en"},
		{func() string { return "+1415" + "2" + digits(6) }, "en"},
		{func() string { return "+1212" + "4" + digits(6) }, "en"},
		{func() string { return "+8190" + digits(8) }, "en"},
		{func() string { return "+49151" + digits(8) }, "en"},
		{func() string { return "+3314" + digits(7) }, "fr"}, // a landline: no SMS
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	members := 0
	var emails, phones []string
	for i := 1; i <= n; i++ {
		z := zones[rng.IntN(len(zones))]
		l := store.ImportLine{Contact: dispatcher.Contact{
			ID: fmt.Sprintf("c%05d", i), Locale: z.locale,
			Attributes: map[string]string{"first_name": names[rng.IntN(len(names))]},
			Tags:       []string{"customer"},
		}}
		if rng.IntN(10) < 9 {
			l.Email = fmt.Sprintf("person%05d@example.%s", i, []string{"com", "org", "net"}[i%3])
		}
		if rng.IntN(10) < 7 {
			if p, err := dispatcher.NormalizePhone(z.phone()); err == nil {
				l.Phone = p
			}
		}
		if l.Phone == "" && rng.IntN(3) == 0 {
			l.Timezone = []string{"America/Sao_Paulo", "Asia/Kolkata", "Australia/Sydney"}[rng.IntN(3)]
		}
		if i%20 == 0 {
			l.Tags = append(l.Tags, "staff")
		} else {
			members++
		}
		for _, k := range channels.Kinds {
			if rng.IntN(10) < 7 {
				l.Consents = append(l.Consents, dispatcher.ConsentEvent{Channel: k, Topic: "newsletter", State: dispatcher.Granted,
					Source: "import", Evidence: map[string]string{"form": "checkout-optin", "wording": "v3"}})
			}
		}
		if i == 1 {
			l.Email, l.Consents = "person00001@example.org", []dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "newsletter",
				State: dispatcher.Granted, Source: "import", Evidence: map[string]string{"form": "checkout-optin"}}}
		}
		if l.Email != "" {
			emails = append(emails, l.Email)
		}
		if l.Phone != "" {
			phones = append(phones, l.Phone)
		}
		if err := enc.Encode(l); err != nil {
			return 0, err
		}
	}
	res, err := s.ImportContacts(ctx, &buf, a.cfg.DefaultTZ, nil)
	if err != nil {
		return 0, err
	}
	if res.Failed > 0 {
		return 0, fmt.Errorf("%d seed contacts were refused (first: line %d, %s %s)", res.Failed, res.Errors[0].Line, res.Errors[0].Field, res.Errors[0].Message)
	}
	// Suppressions: bounces, complaints and STOP replies from the past.
	sup := 0
	for i, e := range emails[1:] {
		reason := ""
		switch i % 40 {
		case 3:
			reason = dispatcher.SuppressBounce
		case 17:
			reason = dispatcher.SuppressComplaint
		}
		if reason != "" {
			if err := s.Suppress(ctx, channels.Email, e, reason, time.Time{}); err != nil {
				return 0, err
			}
			sup++
		}
	}
	for i, p := range phones {
		if i%30 == 7 {
			if err := s.Suppress(ctx, channels.SMS, p, dispatcher.SuppressStop, time.Time{}); err != nil {
				return 0, err
			}
			sup++
		}
	}
	// Recent sends: some contacts already had their marketing emails this week.
	caps := throttle.NewCaps(a.rdb, a.cfg.Prefix, a.cfg.capRules)
	var reqs []throttle.CapRequest
	now := time.Now()
	for i := 2; i <= n; i += 25 {
		id := fmt.Sprintf("c%05d", i)
		for j := range 2 {
			reqs = append(reqs, throttle.CapRequest{Contact: id, Channel: string(channels.Email), Topic: "newsletter",
				SendID: fmt.Sprintf("earlier-%s-%d", id, j), Marketing: true})
		}
	}
	if _, err := caps.ReserveMany(ctx, now.Add(-48*time.Hour), reqs); err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "Seeded %d contacts (%d in the segment), %d suppressions, %d recent sends.\n", res.Imported, members, sup, len(reqs))
	return members, nil
}
