package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/missive-dev/missive/channels/email/bounce"
	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/feedback"
)

// bounceCommand runs "missive bounce inspect FILE": the parse of a bounce
// or complaint mail, as JSON, for operators.
func bounceCommand(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: missive bounce inspect FILE (a bounce or complaint mail, or - for standard input)"
	if len(args) > 0 && isHelp(args[len(args)-1]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	if len(args) != 2 || args[0] != "inspect" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	var r io.Reader = os.Stdin
	if args[1] != "-" {
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	rep, err := bounce.Parse(r)
	if err != nil {
		return err
	}
	type recipient struct {
		Address    string `json:"address"`
		Action     string `json:"action,omitempty"`
		Status     string `json:"status,omitempty"`
		Class      string `json:"class,omitempty"`
		Diagnostic string `json:"diagnostic,omitempty"`
	}
	out := struct {
		Kind         string      `json:"kind"`
		Recipients   []recipient `json:"recipients"`
		FeedbackType string      `json:"feedback_type,omitempty"`
		MessageID    string      `json:"message_id,omitempty"`
		SendID       string      `json:"send_id,omitempty"`
		ReportingMTA string      `json:"reporting_mta,omitempty"`
	}{Kind: rep.Kind, Recipients: []recipient{}, FeedbackType: rep.FeedbackType, MessageID: rep.MessageID, ReportingMTA: rep.ReportingMTA}
	for _, r := range rep.Recipients {
		out.Recipients = append(out.Recipients, recipient{r.Address, r.Action, r.Status, r.Class, r.Diagnostic})
	}
	// Missive's Message-IDs are <send id@domain>.
	if id, _, ok := strings.Cut(rep.MessageID, "@"); ok && strings.Contains(id, "~") {
		out.SendID = id
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// startBounceListener serves the bounce SMTP listener for d until ctx ends.
func startBounceListener(ctx context.Context, c *config, d *apppkg.Dispatcher, log *slog.Logger, stdout io.Writer) error {
	l, err := bounce.Listen(bounce.ListenerConfig{
		Addr:       c.BounceSMTPAddr,
		Domain:     c.BounceDomain,
		Logger:     log,
		CheckToken: d.Feedback.ValidVERP,
		Handle: func(ctx context.Context, token string, r *bounce.Report) error {
			err := d.HandleBounceReport(ctx, token, r)
			if errors.Is(err, feedback.ErrForgedVERP) || errors.Is(err, feedback.ErrUnknownSend) {
				log.Warn("bounce report dropped", "reason", err.Error())
				return nil // nothing to retry: accept and drop
			}
			return err
		},
	})
	if err != nil {
		return fmt.Errorf("MISSIVE_BOUNCE_SMTP_ADDR: %w", err)
	}
	fmt.Fprintf(stdout, "missive: bounce listener on %s for @%s\n", l.Addr(), c.BounceDomain)
	<-ctx.Done()
	return l.Close()
}
