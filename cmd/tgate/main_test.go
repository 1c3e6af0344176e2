package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func runTgate(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestHelpExitsZero: -h, --help, -help and help print the list of
// commands to stdout and exit 0; no command or an unknown one is a short
// error with status 2.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		code, out, errOut := runTgate(args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: tgate <command> [flags]\n") {
			t.Errorf("%q: exit %d, stderr %q, stdout %q", args, code, errOut, out)
		}
		for name := range commands {
			if !regexp.MustCompile(`(?m)^  ` + name + ` +\S`).MatchString(out) {
				t.Errorf("%q: command %s is not listed:\n%s", args, name, out)
			}
		}
	}
	code, out, errOut := runTgate()
	if code != 2 || out != "" || !strings.HasPrefix(errOut, "tgate: no command given\nusage: tgate") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runTgate("generat")
	if code != 2 || out != "" || errOut != "tgate: unknown command \"generat\"\nRun 'tgate -h' for the commands.\n" {
		t.Errorf("unknown command: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestHelpCommand: `tgate help NAME` prints NAME's own help, as NAME -h
// does.
func TestHelpCommand(t *testing.T) {
	for name := range commands {
		code, out, errOut := runTgate("help", name)
		_, want, _ := runTgate(name, "-h")
		if name == "help" {
			_, want, _ = runTgate("-h")
		}
		if code != 0 || errOut != "" || out != want {
			t.Errorf("help %s: exit %d, stderr %q, stdout\n%s\nwant\n%s", name, code, errOut, out, want)
		}
	}
	if code, _, errOut := runTgate("help", "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("help nope: exit %d, %q", code, errOut)
	}
}

// TestVersionText checks the lines of `tgate version` for a build with
// version control information and for one without.
func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.1", Path: "github.com/tgate-web/tgate/cmd/tgate",
		Main: debug.Module{Path: "github.com/tgate-web/tgate", Version: "v0.0.0-20250101120000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2025-01-01T12:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "tgate github.com/tgate-web/tgate v0.0.0-20250101120000-0123456789ab+dirty\n" +
		"commit 0123456789ab of 2025-01-01T12:00:00Z, with uncommitted changes\n" +
		"go1.26.1 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := versionText(bi); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	bi = &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/tgate-web/tgate", Version: "(devel)"}}
	if got, want := versionText(bi), "tgate github.com/tgate-web/tgate (devel)\ngo1.26.1 "+runtime.GOOS+"/"+runtime.GOARCH+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestBinary builds the command and runs it as a user would: `tgate
// version` names the module and this toolchain's Go version, `tgate -h`
// exits 0, and a bad flag value is one error line and a pointer to -h.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "tgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("tgate version: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if !strings.HasPrefix(lines[0], "tgate github.com/tgate-web/tgate ") || lines[len(lines)-1] != runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("tgate version:\n%s", out)
	}
	if out, err := exec.Command(bin, "-h").Output(); err != nil || !strings.HasPrefix(string(out), "usage: tgate") {
		t.Errorf("tgate -h: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "generate", "--steps", "ten")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("bad flag value: %v", err)
	}
	if want := "tgate generate: invalid value \"ten\" for flag -steps: parse error\nRun 'tgate generate -h' for its flags.\n"; stderr.String() != want {
		t.Errorf("bad flag value: stderr %q, want %q", stderr.String(), want)
	}
}
