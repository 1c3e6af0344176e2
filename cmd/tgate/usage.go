package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// help describes a subcommand for its -h output, which every subcommand
// prints in the same layout: a usage line, a paragraph, then its flags
// (grouped under headings when groups are given), each flag's name and
// value on one line and its description, with its default stated once,
// indented below.
type help struct {
	name  string // the subcommand, as typed after "tgate"
	usage string // what follows "tgate name" on the usage line
	about string // a paragraph on what the command does
	// groups lists the flags under headings, in order; flags in no group
	// follow under "flags:". Without groups every flag is listed
	// alphabetically under "flags:".
	groups []flagGroup
	// values names each flag's value (--model DIR); a flag not listed gets
	// N, X or TEXT after its type, and a boolean flag none.
	values map[string]string
	// notes follows the flags.
	notes string
}

// flagGroup is a heading and the flags listed under it.
type flagGroup struct {
	title string
	flags []string
}

// print writes the help to w.
func (h help) print(w io.Writer, fl *flag.FlagSet) {
	fmt.Fprintln(w, strings.TrimSpace("usage: tgate "+h.name+" "+h.usage))
	if h.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(h.about))
	}
	listed := map[string]bool{}
	for _, g := range h.groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, n := range g.flags {
			if f := fl.Lookup(n); f != nil {
				h.printFlag(w, f)
				listed[n] = true
			}
		}
	}
	var rest []*flag.Flag
	fl.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			rest = append(rest, f)
		}
	})
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	if len(rest) > 0 {
		title := "flags"
		if len(h.groups) > 0 {
			title = "other flags"
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range rest {
			h.printFlag(w, f)
		}
	}
	if h.notes != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(h.notes))
	}
}

// printFlag writes "  --name VALUE" and the description below it. The
// flag's default is appended as "(default: V)" unless the description
// already states it or the default is empty, zero or false.
func (h help) printFlag(w io.Writer, f *flag.Flag) {
	value, ok := h.values[f.Name]
	if !ok {
		value = valueName(f)
	}
	line := "  --" + f.Name
	if value != "" {
		line += " " + value
	}
	desc := f.Usage
	if !strings.Contains(desc, "default") {
		switch f.DefValue {
		case "", "0", "false":
		default:
			def := f.DefValue
			if valueName(f) == "TEXT" {
				def = fmt.Sprintf("%q", def)
			}
			desc += " (default: " + def + ")"
		}
	}
	fmt.Fprintf(w, "%s\n        %s\n", line, desc)
}

// valueName names a flag's value after its type.
func valueName(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "X"
	}
	switch g.Get().(type) {
	case bool:
		return ""
	case int, int64, uint, uint64:
		return "N"
	case float64:
		return "X"
	}
	return "TEXT"
}

// parseFlags parses a subcommand's arguments. -h and --help print the
// command's help to stdout (status 0); a flag that does not parse prints
// one line naming the problem and a pointer to -h on stderr (status 2).
// ok is true when the command should go on.
func parseFlags(fl *flag.FlagSet, h help, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	err := fl.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		h.print(stdout, fl)
		return 0, false
	case err != nil:
		return usageError(stderr, h.name, err), false
	}
	return 0, true
}

// usageError reports a mistake in a command line: one line naming it, one
// pointing to the command's help. It returns the exit status 2.
func usageError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "tgate %s: %v\nRun 'tgate %s -h' for its flags.\n", name, err, name)
	return 2
}
