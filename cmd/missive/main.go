// Command missive runs Missive: the HTTP API and public pages, the workers
// that gate and deliver, the scheduler, or all of them; and a demo that
// needs nothing installed.
//
//	missive serve       all roles in one process
//	missive api         HTTP API, unsubscribe pages, webhooks
//	missive worker      plan, gate and send tasks
//	missive scheduler   fires scheduled campaigns (one leader at a time)
//	missive demo        seeded data, one campaign end to end, a summary
//	missive contacts    import (NDJSON, through the API), erase, export
//	missive campaign    create, schedule, start, pause, resume, cancel, status, watch
//	missive keys        rotate: re-encrypt contacts under the active data key
//	missive users       add, list, remove, passwd: the console's accounts
//	missive register    the record of processing (GDPR Art. 30)
//	missive bench       measure throughput, latency and cost on this machine
//	missive health      exit 0 if a health URL answers 2xx (container healthchecks)
//	missive version     the module version and VCS revision of this binary
//
// Configuration comes from the environment (MISSIVE_*, TWILIO_*); flags
// override it. Run "missive <command> -h" for the flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Missive: a privacy-first campaign dispatcher for email and SMS.

Usage: missive <command> [flags]

Commands:
  serve       run every role: API, worker, scheduler
  api         run the HTTP API and the public pages
  worker      run the workers that gate and deliver messages
  scheduler   run the scheduler (safe to run several: one leads)
  demo        seed an in-process Redis, run a campaign end to end, show the outcome
  bounce      "bounce inspect FILE": the parse of a bounce or complaint mail, as JSON
  import      the same as "contacts import"
  campaign    create, schedule, start, pause, resume, cancel a campaign or one run; status and live watch of its runs
  keys        "keys rotate": re-encrypt every contact under the first key of MISSIVE_DATA_KEYS
  users       "users add|list|remove|passwd": the marketer console's accounts
  register    the record of processing (GDPR Art. 30) of this configuration, as Markdown or JSON
  contacts    "contacts import FILE": bulk-import contacts (NDJSON) through the API, with progress;
              "contacts erase ID": erase a contact (GDPR Art. 17); "contacts export ID": all held on it
  ledger      "ledger verify [ID]": check the consent ledgers' MACs and chains; exits 1 on any problem
  bench       measure email, gate and SMS figures on this machine, at serve's defaults, with a local sink
  health      "health [URL]": exit 0 if URL (default http://127.0.0.1:9090/readyz) answers 2xx, else 1
  version     print the module version and VCS revision of this binary

Run "missive <command> -h" for its flags. Every flag can also be set by the
environment variable named in its help.
`

// command runs one command of the binary with the arguments after its
// name; errHelp and errUsage set the exit code.
type command func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// serveRoles runs serve with the roles r.
func serveRoles(r role) command {
	return func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
		return serve(ctx, args, getenv, stdout, stderr, r)
	}
}

// offline adapts a command that needs no context nor environment.
func offline(f func(args []string, stdout, stderr io.Writer) error) command {
	return func(_ context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
		return f(args, stdout, stderr)
	}
}

// commands are the commands of the binary by name (see usage).
var commands = map[string]command{
	"serve":     serveRoles(roleAPI | roleWorker | roleScheduler),
	"api":       serveRoles(roleAPI),
	"worker":    serveRoles(roleWorker),
	"scheduler": serveRoles(roleScheduler),
	"demo":      demo,
	"bounce":    offline(bounceCommand),
	"import":    importContacts,
	"campaign":  campaign,
	"keys":      keysCommand,
	"users":     usersCommand,
	"register":  registerCommand,
	"contacts":  contacts,
	"ledger":    ledgerCommand,
	"bench":     bench,
	"health":    healthCommand,
	"version":   offline(versionCommand),
}

// Main runs the command in args and returns the process exit code. Tests
// call it as the binary would be called.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	run, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "missive: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	err := run(ctx, rest, getenv, stdout, stderr)
	switch err {
	case errHelp:
		return 0
	case errUsage:
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "missive: %v\n", err)
		return 1
	}
	return 0
}
