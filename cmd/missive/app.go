package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/outbox"
	"github.com/missive-dev/missive/channels/sms"
	"github.com/missive-dev/missive/dispatcher/api"
	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/webhook"
	"github.com/missive-dev/missive/throttle"
)

type role int

const (
	roleAPI role = 1 << iota
	roleWorker
	roleScheduler
)

// openRedis connects to the configured Redis, or starts an in-process one
// for memory:// (and for the demo, whose url may be empty: validate
// refuses an empty one elsewhere). close releases both.
func openRedis(ctx context.Context, url string, log *slog.Logger, opts ...store.DialOption) (rdb store.Client, close func(), err error) {
	if url == "" || url == memoryRedis {
		m, err := miniredis.Run()
		if err != nil {
			return nil, nil, fmt.Errorf("in-process Redis: %w", err)
		}
		log.Warn("MISSIVE_REDIS_URL is " + cmp.Or(url, "empty") + ": using an in-process Redis that keeps nothing; EVERYTHING IS LOST ON EXIT. Set a redis:// URL for real use.")
		c, err := store.Dial(ctx, "redis://"+m.Addr(), opts...)
		if err != nil {
			m.Close()
			return nil, nil, fmt.Errorf("in-process Redis: %w", err)
		}
		return c, func() { c.Close(); m.Close() }, nil
	}
	rdb, err = store.Dial(ctx, url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("MISSIVE_REDIS_URL: %w", err)
	}
	return rdb, func() { rdb.Close() }, nil
}

// openDispatcher opens the Redis at url (openRedis) and a Dispatcher of
// cfg on it, for the commands that run once and exit; close releases
// both.
func openDispatcher(ctx context.Context, url string, cfg apppkg.Config) (d *apppkg.Dispatcher, close func(), err error) {
	rdb, closeRedis, err := openRedis(ctx, url, cfg.Logger)
	if err != nil {
		return nil, nil, err
	}
	cfg.Redis = rdb
	if d, err = apppkg.New(cfg); err != nil {
		closeRedis()
		return nil, nil, err
	}
	return d, func() { d.Close(); closeRedis() }, nil
}

// openChannels builds the configured channels; kinds without a provider
// go to the outbox. The outbox has no provider pace to respect.
func openChannels(c *config, log *slog.Logger) (map[channels.Kind]channels.Channel, map[channels.Kind]bool, func(), error) {
	chs := map[channels.Kind]channels.Channel{}
	viaOutbox := map[channels.Kind]bool{}
	var closers []func()
	closeAll := func() {
		for _, f := range closers {
			f()
		}
	}
	if c.SMTPURL != "" {
		m, err := email.New(email.Config{URL: c.SMTPURL, From: c.EmailFrom, ReturnPath: c.ReturnPath, DKIM: c.dkim, Connections: c.SMTPConns, Logger: log})
		if err != nil {
			return nil, nil, nil, err
		}
		chs[channels.Email] = m
		closers = append(closers, func() { m.Close() })
	}
	if c.TwilioSID != "" {
		s, err := sms.New(sms.Config{AccountSID: c.TwilioSID, AuthToken: c.TwilioToken, From: c.SMSFrom, APIURL: c.TwilioAPIURL,
			StatusCallback: strings.TrimRight(c.PublicURL, "/") + "/webhooks/twilio/status", Logger: log})
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		chs[channels.SMS] = s
		closers = append(closers, func() { s.Close() })
	}
	// The kinds left share one outbox.
	var box *outbox.Outbox
	for _, k := range channels.Kinds {
		if chs[k] != nil {
			continue
		}
		if box == nil {
			b, err := openOutbox(c)
			if err != nil {
				closeAll()
				return nil, nil, nil, err
			}
			box = b
		}
		chs[k], viaOutbox[k] = box, true
	}
	return chs, viaOutbox, closeAll, nil
}

// openOutbox opens the outbox in MISSIVE_OUTBOX_DIR, which signs with
// the configured DKIM key as the relay would.
func openOutbox(c *config) (*outbox.Outbox, error) {
	from := c.EmailFrom
	if from == "" {
		from = "Missive <missive@localhost.invalid>"
	}
	opts := []outbox.Option{outbox.WithEmailDefaults(email.Defaults{From: from})}
	if c.dkim != nil {
		opts = append(opts, outbox.WithDKIM(c.dkim))
	}
	b, err := outbox.New(c.OutboxDir, opts...)
	if err != nil {
		return nil, fmt.Errorf("MISSIVE_OUTBOX_DIR: %w", err)
	}
	return b, nil
}

// app is a configured Missive process.
type app struct {
	cfg       *config
	log       *slog.Logger
	rdb       store.Client
	d         *apppkg.Dispatcher
	viaOutbox map[channels.Kind]bool
	// metrics are served on the operations listener (ops.go).
	metrics *metrics.Metrics
	close   func()
}

func newApp(ctx context.Context, c *config, secret []byte, stderr io.Writer) (*app, error) {
	log := c.logger(stderr, c.level)
	m := metrics.New()
	rdb, closeRedis, err := openRedis(ctx, c.RedisURL, log, store.WithMetrics(m))
	if err != nil {
		return nil, err
	}
	chs, viaOutbox, closeChannels, err := openChannels(c, log)
	if err != nil {
		closeRedis()
		return nil, err
	}
	providerRates := map[channels.Kind]throttle.Rate{}
	for k, r := range c.rates {
		if !viaOutbox[k] {
			providerRates[k] = r
		}
	}
	d, err := apppkg.New(apppkg.Config{
		Redis:                 rdb,
		Prefix:                c.Prefix,
		Secret:                secret,
		PublicURL:             c.PublicURL,
		DefaultTimezone:       c.DefaultTZ,
		Channels:              chs,
		EmailFrom:             c.EmailFrom,
		SenderName:            c.SenderName,
		Processors:            c.processors(),
		TokenKeys:             c.tokenKeys,
		ActiveTokenKey:        c.activeKey,
		DataKeys:              c.dataKeys,
		TwilioAuthToken:       c.TwilioToken,
		ValidTwilioSignature:  sms.ValidSignature,
		BounceDomain:          c.BounceDomain,
		Feedback:              c.feedback,
		ESP:                   c.esp(),
		ListUnsubscribeMailto: c.Mailto,
		Caps:                  c.capRules,
		Quiet:                 c.quiet,
		ProviderRates:         providerRates,
		Tuning:                pipeline.Tuning{Concurrency: c.Concurrency},
		InactiveAfter:         c.inactive,
		Metrics:               m,
		Logger:                log,
	})
	if err != nil {
		closeChannels()
		closeRedis()
		return nil, err
	}
	return &app{cfg: c, log: log, rdb: rdb, d: d, viaOutbox: viaOutbox, metrics: m, close: func() { closeChannels(); closeRedis() }}, nil
}

// serve runs the given roles until ctx ends.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, roles role) error {
	c, err := parseConfig("serve", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	if err := c.validate(false); err != nil {
		return err
	}
	var keys []api.APIKey
	if roles&roleAPI != 0 {
		if keys, err = api.ParseAPIKeys(c.APIKeys); err != nil {
			return err
		}
	}
	a, err := newApp(ctx, c, []byte(c.Secret), stderr)
	if err != nil {
		return err
	}
	defer a.close()
	stopAnnounce, err := announceKeys(ctx, a, roles)
	if err != nil {
		return err
	}
	defer stopAnnounce()
	if roles&roleWorker != 0 {
		// Workers claim sends: say at start what a crash of Redis can cost.
		a.d.SecureClaims(ctx)
	}
	return a.run(ctx, roles, keys, stdout)
}

// run starts the roles and waits for all of them; the first to fail stops
// the others.
func (a *app) run(ctx context.Context, roles role, keys []api.APIKey, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	start := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	// Every role has the operations listener.
	ops, err := a.listenOps(stdout)
	if err != nil {
		return err
	}
	if roles&roleAPI != 0 {
		ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
		if err != nil {
			if ops != nil {
				ops.Close()
			}
			return fmt.Errorf("MISSIVE_HTTP_ADDR: %w", err)
		}
		fmt.Fprintf(stdout, "missive: listening on http://%s\n", ln.Addr())
		start(func() error { return serveHTTP(ctx, ln, a.apiHandler(keys), a.cfg.http) })
	}
	if ops != nil {
		start(func() error { return a.serveOps(ctx, ops) })
	}
	if roles&roleWorker != 0 {
		start(func() error { return a.d.Pipeline.RunWorker(ctx) })
		if a.cfg.BounceSMTPAddr != "" {
			start(func() error { return startBounceListener(ctx, a.cfg, a.d, a.log, stdout) })
		}
	}
	if roles&roleScheduler != 0 {
		start(func() error { return a.d.Scheduler.Run(ctx, time.Second) })
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// esp gathers the email providers' webhook settings.
func (c *config) esp() webhook.ESPConfig {
	e := webhook.ESPConfig{SendGridPublicKey: c.SendGridKey, MailgunSigningKey: c.MailgunKey}
	for _, arn := range strings.Split(c.SESTopics, ",") {
		if arn = strings.TrimSpace(arn); arn != "" {
			e.SESTopicARNs = append(e.SESTopicARNs, arn)
		}
	}
	e.PostmarkUser, e.PostmarkPassword, _ = strings.Cut(c.PostmarkAuth, ":")
	return e
}
