package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tgate-web/tgate/hub"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/sched"
)

// cacheURLs lists the URLs stored in the page's model cache.
func (s *session) cacheURLs() []string {
	var urls []string
	s.eval(`caches.open("tgate-models").then((c) => c.keys()).then((ks) => ks.map((k) => k.url))`, &urls)
	return urls
}

// statusError returns the status line when it shows an error, else "".
func (s *session) statusError() string {
	var msg string
	s.eval(`(() => { const el = document.getElementById("status"); return el.classList.contains("error") ? el.textContent : ""; })()`, &msg)
	return msg
}

// TestLoadFailuresAndCache: a repository that does not exist and a folder
// whose config disagrees with its weights get clear errors and the page
// keeps working; a download cut by the server leaves no cache entry and a
// retry succeeds; the fp16, sharded model then computes what the CPU
// backend computes, loads again from the cache alone, cancels within a
// step, and the cache manager deletes it.
func TestLoadFailuresAndCache(t *testing.T) {
	const repo = "tgate/tiny-sd-fp16"
	s := open(t, "/?model="+repo+"&hub={origin}", 12*time.Minute)
	s.waitState(2*time.Minute, "ready", "error")

	// A repository that does not exist.
	s.setField("model", "custom")
	s.setField("model-custom", "tgate/no-such-model")
	s.clickAndWait("#load", time.Minute)
	if msg := s.statusError(); !strings.Contains(msg, "not found") {
		t.Errorf("missing repository: status %q, want an error saying not found", msg)
	}
	// A folder whose UNet config disagrees with its weights.
	s.setField("model-custom", "tgate/broken")
	s.clickAndWait("#load", time.Minute)
	if msg := s.statusError(); !strings.Contains(msg, "shape") || !strings.Contains(msg, "unet") {
		t.Errorf("broken model: status %q, want the weight and its shapes named", msg)
	}

	// A download cut halfway.
	shard := repo + "/unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors"
	shardURL := s.url + "/" + strings.Replace(shard, repo+"/", repo+"/resolve/main/", 1)
	s.srv.CutOnce(shard, 1000)
	s.setField("model", "local:"+repo)
	if st := s.clickAndWait("#load", time.Minute); st != "error" && s.statusError() == "" {
		t.Fatalf("cut download: state %s, status %q; want an error", st, s.text("#status"))
	}
	if msg := s.statusError(); !strings.Contains(msg, "broke off") && !strings.Contains(msg, "ended after") {
		t.Errorf("cut download: status %q", msg)
	}
	for _, u := range s.cacheURLs() {
		if strings.HasPrefix(u, shardURL) {
			t.Fatalf("the cut download left a cache entry: %s", u)
		}
	}
	cut := s.srv.Stats(shard).Gets
	if st := s.clickAndWait("#load", 2*time.Minute); st != "ready" {
		t.Fatalf("retry: state %s, status %q", st, s.text("#status"))
	}
	// The retry fetches the file again, or (Chromium's HTTP cache keeps a
	// cut response with a strong ETag) only its missing bytes with Range
	// requests; either way the whole file is checked before it is stored.
	retried := s.srv.Stats(shard).Gets
	if cut < 1 || retried <= cut {
		t.Errorf("shard fetched %d times by the cut load and %d in all; want the retry to fetch it", cut, retried)
	}
	found := false
	for _, u := range s.cacheURLs() {
		found = found || u == shardURL
	}
	if !found {
		t.Errorf("the retried download is not in the cache")
	}

	// The fp16 variant and its shards compute what the CPU backend does.
	r := s.generate(`{prompt: "a lighthouse at dusk", steps: 3, seed: 21, scheduler: "euler", decoder: "none", returnLatents: true}`)
	want := cpuLatents(t, filepath.Join(env.models, "tgate", "tiny-sd-fp16"),
		pipeline.Request{Prompt: "a lighthouse at dusk", Steps: 3, Guidance: 7.5, Seed: 21, Scheduler: sched.Euler}, hub.PreferFP16)
	if d := maxRelDiff(r.Latents, want); !(d <= 1e-4) {
		t.Errorf("fp16 sharded model: latents differ from the CPU backend's by %.3g relative", d)
	}

	// A second load comes from the cache alone.
	var info struct {
		DownloadBytes float64 `json:"downloadBytes"`
		Files         []struct {
			Cached bool `json:"cached"`
		} `json:"files"`
	}
	s.eval(`window.tgateApp.engine.load("`+repo+`", {hub: location.origin})`, &info)
	if info.DownloadBytes != 0 || len(info.Files) == 0 || !info.Files[0].Cached || s.srv.Stats(shard).Gets != retried {
		t.Errorf("second load: %+v, shard fetched %d times; want everything from the cache", info, s.srv.Stats(shard).Gets)
	}

	// Cancel stops within a step.
	var c struct {
		Code     string `json:"code"`
		Steps    int    `json:"steps"`
		Total    int    `json:"total"`
		CancelAt int    `json:"cancelAt"`
	}
	s.eval(`(async () => {
	  const e = window.tgateApp.engine; let steps = 0, total = 0, cancelAt = 0;
	  try {
	    await e.generate({prompt: "x", steps: 40, decoder: "none", onProgress: (ev) => {
	      if (ev.type !== "step") return;
	      steps = ev.step; total = ev.total;
	      if (ev.step === 1) { cancelAt = ev.step; e.cancel(); }
	    }});
	    return {code: "finished", steps, total, cancelAt};
	  } catch (err) { return {code: err.code, steps, total, cancelAt}; }
	})()`, &c)
	if c.Code != "cancelled" || c.Steps > c.CancelAt+1 || c.Total < 40 {
		t.Errorf("cancel: %+v; want code cancelled within one step of the cancel", c)
	}

	// The cache manager deletes the model.
	s.do(chromedp.Click("#cache-refresh"))
	time.Sleep(500 * time.Millisecond)
	sel := `#cache-list tr[data-model="` + repo + `@main"] .cache-delete`
	s.do(chromedp.WaitVisible(sel), chromedp.Click(sel))
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := 0
		for _, u := range s.cacheURLs() {
			if strings.Contains(u, "/"+repo+"/") {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delete, %d files of %s are still cached", left, repo)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.screenshot("load-failures")
}
