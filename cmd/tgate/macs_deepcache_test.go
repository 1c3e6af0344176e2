package main

import (
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// TestMacsDeepCacheRows runs `tgate macs` on the SD-XL configs with the
// settings that reproduce the T-GATE README's DeepCache rows (see
// macs.TestDeepCachePaperRows) and checks the printed rows.
func TestMacsDeepCacheRows(t *testing.T) {
	dir := golden.Dir(t, "assets", "configs", "stabilityai/stable-diffusion-xl-base-1.0")
	code, out, errOut := runMacsCmd("--model", dir, "--tgate", "v2", "--gate-step", "13", "--sp-interval", "1",
		"--warm-up", "0", "--deepcache-interval", "3", "--deepcache-branch", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"DeepCache (interval 3, branch 1)", "57.888T", "DeepCache + T-GATE v2", "43.866T"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runMacsCmd("--model", dir, "--deepcache-interval", "-1"); code == 0 {
		t.Errorf("a negative interval was accepted")
	}
}
