// Command tgate runs the tgate-web pipeline natively on the CPU backend and
// offers tools around it: making fixture checkpoints, inspecting
// checkpoints, and counting what T-GATE saves.
//
// Each subcommand lives in its own file and registers itself in init.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand: run receives the arguments after its name and
// returns the process exit status.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string, stdout, stderr io.Writer) int) {
	commands[name] = command{summary: summary, run: run}
}

func init() {
	register("help", "print this help, or a command's flags (tgate help generate)", runHelp)
}

// usage writes the list of commands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tgate <command> [flags]")
	fmt.Fprintln(w, "\nRuns text-to-image diffusion (Stable Diffusion, LCM) with T-GATE on the CPU, and tools around it.")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tgate <command> -h' for a command's flags.")
}

// runHelp runs `tgate help [COMMAND]`: the list of commands, or the
// command's own help.
func runHelp(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stdout)
		return 0
	case len(args) > 1:
		fmt.Fprintf(stderr, "tgate help: one command at a time, got %q\n", args)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok || args[0] == "help" {
		if ok {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "tgate help: unknown command %q\nRun 'tgate -h' for the commands.\n", args[0])
		return 2
	}
	return cmd.run([]string{"-h"}, stdout, stderr)
}

// run dispatches a command line (without the program name) and returns
// the exit status: -h, --help and help print the usage and give 0; no
// command or an unknown one prints a short error and gives 2.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tgate: no command given")
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tgate: unknown command %q\nRun 'tgate -h' for the commands.\n", args[0])
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
