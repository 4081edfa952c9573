package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/missive-dev/missive/dispatcher/console"
	"github.com/missive-dev/missive/dispatcher/store"
)

// usersStdin is where "missive users" reads passwords (a variable for
// tests).
var usersStdin io.Reader = os.Stdin

// usersCommand manages the console's accounts on the Redis the running
// processes share: add, list, remove, passwd. Passwords are read from
// stdin, or prompted for twice on a terminal; never from a flag, which
// the shell history and the process list would show.
func usersCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = `usage:
  missive users add NAME [-role admin|marketer|read-only] [-timezone ZONE]
                          create a console account; the password comes from stdin or a prompt
  missive users list      the accounts, their roles and zones
  missive users remove NAME
                          delete an account and sign it out
  missive users passwd NAME
                          set an account's password (stdin or prompt) and sign it out`
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	var name string
	if sub != "list" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprintln(stderr, usage)
			return errUsage
		}
		name, rest = rest[0], rest[1:]
	}
	var role, tz string
	c, err := parseConfig("users "+sub, rest, getenv, stderr, func(fs *flag.FlagSet) {
		if sub == "add" {
			fs.StringVar(&role, "role", console.RoleMarketer, "the account's role: admin, marketer or read-only")
			fs.StringVar(&tz, "timezone", "", "the zone the user reads and writes times in; empty: MISSIVE_DEFAULT_TIMEZONE")
		}
	})
	if err != nil {
		return err
	}
	if c.RedisURL == "" {
		return errors.New("MISSIVE_REDIS_URL (--redis-url): required: accounts live in the Redis the running processes share")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rdb, closeRedis, err := openRedis(ctx, c.RedisURL, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	// Accounts need neither the secret nor the data keys.
	st := store.NewStore(rdb, c.Prefix, nil, time.Now, 0)
	switch sub {
	case "add":
		pw, err := readPassword(stderr)
		if err != nil {
			return err
		}
		if err := console.AddUser(ctx, st, name, role, tz, pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s added (%s)\n", name, role)
	case "passwd":
		pw, err := readPassword(stderr)
		if err != nil {
			return err
		}
		if err := console.SetPassword(ctx, st, name, pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s set; its sessions are signed out\n", name)
	case "remove":
		if err := console.RemoveUser(ctx, st, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s removed\n", name)
	case "list":
		us, err := st.ConsoleUsers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tTIMEZONE\tCREATED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, cmp.Or(u.Timezone, "-"), u.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	default:
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	return nil
}

// readPassword reads a password: prompted for twice on a terminal, else
// the first line of stdin.
func readPassword(stderr io.Writer) (string, error) {
	if f, ok := usersStdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(usersStdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}
