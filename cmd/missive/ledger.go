package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	apppkg "github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/store"
)

// errLedgerProblems says that a ledger did not prove itself; the report
// said where.
var errLedgerProblems = errors.New("ledger verify: problems found")

// ledgerCommand runs "missive ledger verify [contact]": it checks the
// consent ledgers' MACs and chains on the Redis the running processes
// share, with their MISSIVE_SECRET, and prints one JSON report per line
// for each ledger with a problem.
func ledgerCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = `usage:
  missive ledger verify [CONTACT]   check a contact's consent ledger, or every ledger (erased
                                    contacts' included): edited, removed, inserted or moved
                                    events, and current consents no event accounts for`
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	rest, contact := args[1:], ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		contact, rest = rest[0], rest[1:]
	}
	c, err := parseConfig("ledger verify", rest, getenv, stderr, nil)
	if err != nil {
		return err
	}
	switch {
	case c.RedisURL == "":
		return errors.New("MISSIVE_REDIS_URL (--redis-url): required: the ledgers are on the Redis the running processes share")
	case len(c.Secret) < 32:
		return errors.New("MISSIVE_SECRET (--secret): required, the running processes' own: it keys the ledger's MACs")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, closeD, err := openDispatcher(ctx, c.RedisURL, apppkg.Config{Prefix: c.Prefix, Secret: []byte(c.Secret), Logger: log})
	if err != nil {
		return err
	}
	defer closeD()
	enc := json.NewEncoder(stdout)
	var checked, bad int
	report := func(r store.LedgerReport) error {
		checked++
		if !r.OK() {
			bad++
			return enc.Encode(r)
		}
		return nil
	}
	if contact != "" {
		r, err := d.Store.VerifyLedger(ctx, contact)
		if err != nil {
			return err
		}
		if err := report(r); err != nil {
			return err
		}
		if r.OK() {
			fmt.Fprintf(stderr, "ledger verify: %s: %d events, %d written before sealing, no problem\n", contact, r.Events, r.Unsealed)
		}
	} else if err := d.Store.VerifyLedgers(ctx, report); err != nil {
		return err
	} else {
		fmt.Fprintf(stderr, "ledger verify: %d ledgers checked, %d with problems\n", checked, bad)
	}
	if bad > 0 {
		return errLedgerProblems
	}
	return nil
}
