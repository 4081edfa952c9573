package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"

	apppkg "github.com/missive-dev/missive/dispatcher/app"
)

// registerCommand prints the record of processing (GDPR Art. 30) built
// from the local configuration and the topics in Redis; no server needs
// to run. It loads the configuration as serve does, so the register
// describes what serve would run.
func registerCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var format string
	c, err := parseConfig("register", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "markdown", "json or markdown")
	})
	if err != nil {
		return err
	}
	if format != "json" && format != "markdown" {
		return fmt.Errorf("--format: must be json or markdown")
	}
	if err := c.validate(false); err != nil {
		return err
	}
	log := c.logger(stderr, c.level)
	// No channel is opened: the register only names the processors.
	d, closeD, err := openDispatcher(ctx, c.RedisURL, apppkg.Config{
		Prefix:          c.Prefix,
		Secret:          []byte(c.Secret),
		PublicURL:       c.PublicURL,
		DefaultTimezone: c.DefaultTZ,
		SenderName:      c.SenderName,
		Processors:      c.processors(),
		Quiet:           c.quiet,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	defer closeD()
	reg, err := d.Privacy.Register(ctx)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reg)
	}
	_, err = io.WriteString(stdout, reg.Markdown())
	return err
}

// processors names who delivers messages, from which channels are
// configured: the SMTP relay by host (never its credentials), Twilio, and
// the outbox for kinds that have no provider.
func (c *config) processors() []string {
	var ps []string
	outbox := false
	if c.SMTPURL != "" {
		host := "host not parsed"
		if u, err := url.Parse(c.SMTPURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		ps = append(ps, "SMTP relay ("+host+")")
	} else {
		outbox = true
	}
	if c.TwilioSID != "" {
		ps = append(ps, "Twilio")
	} else {
		outbox = true
	}
	if outbox {
		ps = append(ps, "outbox (development)")
	}
	return ps
}
