package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"text/tabwriter"
)

// contacts runs "missive contacts import FILE" and "missive contacts
// erase|export ID" over the API: erasure
// prints what was erased and what was kept, and why; export prints the
// contact's JSON document.
func contacts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = `usage:
  missive contacts import FILE  bulk-import contacts from an NDJSON file, with progress;
                                lists the refused lines (line number and field)
  missive contacts erase ID     erase a contact; prints what was erased and what was kept
  missive contacts export ID    print everything held on a contact, as JSON

Run "missive contacts <verb> -h" for a verb's flags.`
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	verb := args[0]
	if verb == "import" {
		return importContacts(ctx, args[1:], getenv, stdout, stderr)
	}
	a, fs, err := newAdmin("contacts "+verb, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 || (verb != "erase" && verb != "export") {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	id := fs.Arg(0)
	path := "/v1/contacts/" + url.PathEscape(id)
	if verb == "export" {
		var doc json.RawMessage
		if err := a.do(ctx, http.MethodGet, path+"/export", nil, 0, &doc); err != nil {
			return err
		}
		_, err := fmt.Fprintln(stdout, string(doc))
		return err
	}
	var rep struct {
		Erased        map[string]int `json:"erased"`
		CapsForgotten bool           `json:"caps_forgotten"`
		Kept          []struct {
			Kind  string `json:"kind"`
			Count int    `json:"count"`
			Why   string `json:"why"`
		} `json:"kept"`
	}
	if err := a.do(ctx, http.MethodDelete, path, nil, 0, &rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "contact %s erased\n", id)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "erased\tcount")
	for _, k := range slices.Sorted(maps.Keys(rep.Erased)) {
		fmt.Fprintf(tw, "%s\t%d\n", k, rep.Erased[k])
	}
	if rep.CapsForgotten {
		fmt.Fprintln(tw, "frequency caps\tall")
	}
	tw.Flush()
	if len(rep.Kept) > 0 {
		fmt.Fprintln(stdout, "kept:")
		for _, k := range rep.Kept {
			fmt.Fprintf(stdout, "  %s (%d): %s\n", k.Kind, k.Count, k.Why)
		}
	}
	return nil
}
