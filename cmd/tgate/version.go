package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

func init() {
	register("version", "print the module version and the Go version it was built with", runVersion)
}

var versionHelp = help{
	name:  "version",
	usage: "",
	about: "Prints the module path and version, the commit it was built from (when known) and the Go toolchain.",
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parseFlags(fl, versionHelp, args, stdout, stderr); !ok {
		return code
	}
	if fl.NArg() != 0 {
		return usageError(stderr, "version", fmt.Errorf("unexpected argument %q", fl.Arg(0)))
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(stderr, "tgate version: this binary carries no build information")
		return 1
	}
	fmt.Fprint(stdout, versionText(bi))
	return 0
}

// versionText is what `tgate version` prints for bi: "tgate MODULE
// VERSION", then the commit and its time when the build recorded them,
// then the Go version and the platform.
func versionText(bi *debug.BuildInfo) string {
	var b strings.Builder
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	module := bi.Main.Path
	if module == "" {
		module = bi.Path
	}
	fmt.Fprintf(&b, "tgate %s %s\n", module, version)
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line := "commit " + rev
		if t := set["vcs.time"]; t != "" {
			line += " of " + t
		}
		if set["vcs.modified"] == "true" {
			line += ", with uncommitted changes"
		}
		fmt.Fprintln(&b, line)
	}
	fmt.Fprintf(&b, "%s %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
