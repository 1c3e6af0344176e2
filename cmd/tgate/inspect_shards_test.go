package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/safetensors"
)

// TestInspectMissingShard: a folder whose index names a shard that is not
// there lists the tensors of the shards that are, then reports the
// missing shard on stderr with exit status 1 — through the index, the
// component folder and the model folder.
func TestInspectMissingShard(t *testing.T) {
	model := filepath.Join(t.TempDir(), "m")
	if err := fixture.Write(model, fixture.Options{Preset: fixture.SD15, Seed: 1, Shards: 3}); err != nil {
		t.Fatal(err)
	}
	unet := filepath.Join(model, "unet")
	index := filepath.Join(unet, "diffusion_pytorch_model.safetensors.index.json")
	gone := filepath.Join(unet, "diffusion_pytorch_model-00002-of-00003.safetensors")
	full, err := safetensors.OpenIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	shard, err := safetensors.Open(gone)
	if err != nil {
		t.Fatal(err)
	}
	all, lost := full.Len(), len(shard.Names())
	full.Close()
	shard.Close()
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	report := "shard " + gone + " named in weight_map does not exist (" + plural(lost, "tensor") + " not listed)"

	for _, path := range []string{index, unet} {
		code, out, errOut := runInspectCmd(path)
		if want := "tgate inspect: " + path + ": " + report + "\n"; code != 1 || errOut != want {
			t.Errorf("%s: exit %d, stderr %q, want %q", path, code, errOut, want)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != all-lost+2 {
			t.Errorf("%s: %d lines, want a heading, %d tensors and a total:\n%s", path, len(lines), all-lost, out)
			continue
		}
		if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAME DTYPE SHAPE BYTES SHARD" {
			t.Errorf("%s: heading %q", path, lines[0])
		}
		if strings.Contains(out, filepath.Base(gone)) {
			t.Errorf("%s: the missing shard is listed", path)
		}
		total := lines[len(lines)-1]
		if !strings.HasSuffix(total, "2 files; missing: 1 shard with "+plural(lost, "tensor")) {
			t.Errorf("%s: total line %q", path, total)
		}
	}

	code, out, errOut := runInspectCmd(model)
	if want := "tgate inspect: " + model + ": " + report + "\n"; code != 1 || errOut != want {
		t.Errorf("model: exit %d, stderr %q, want %q", code, errOut, want)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = strings.Join(f, " ")
		}
	}
	if r := rows["unet"]; !strings.HasPrefix(r, "unet UNet2DConditionModel "+strconv.Itoa(all-lost)+" ") || !strings.HasSuffix(r, " 2 of 3 shards (1 missing)") {
		t.Errorf("unet row %q", r)
	}
	if r := rows["vae"]; !strings.HasSuffix(r, " 3 shards") {
		t.Errorf("vae row %q", r)
	}
	if !strings.Contains(out, "\ntotal: ") {
		t.Errorf("no total line:\n%s", out)
	}

	// With every shard gone there is nothing to list.
	for _, s := range []string{"00001", "00003"} {
		os.Remove(filepath.Join(unet, "diffusion_pytorch_model-"+s+"-of-00003.safetensors"))
	}
	code, out, errOut = runInspectCmd(unet)
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 3 {
		t.Errorf("no shards: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runInspectCmd(model)
	if code != 1 || !strings.Contains(out, "0 of 3 shards (3 missing)") || strings.Count(errOut, "\n") != 3 {
		t.Errorf("model without UNet shards: exit %d, stderr %q\n%s", code, errOut, out)
	}
}
