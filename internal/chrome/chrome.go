// Package chrome finds the headless Chromium the browser tests run in and
// holds the switches that give it a working WebGPU adapter.
package chrome

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// Flags are the switches that give headless Chromium a working WebGPU
// adapter and keep it from reaching the network on its own. With Debian's
// chromium 156 on a machine without a GPU these are enough: the adapter is
// SwiftShader (vendor "google", architecture "swiftshader");
// --enable-features=Vulkan, --use-angle=swiftshader and
// --use-webgpu-adapter=swiftshader are not needed.
var Flags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("headless", "new"),
	chromedp.Flag("no-sandbox", true),
	chromedp.Flag("enable-unsafe-webgpu", true),
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("no-first-run", true),
	chromedp.Flag("no-default-browser-check", true),
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-dev-shm-usage", true),
}

// Find returns the browser binary: $WASMTEST_CHROME when set, else the
// first of chromium, chromium-browser and google-chrome on $PATH.
func Find() (string, error) {
	if p := os.Getenv("WASMTEST_CHROME"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Chromium found: install it (apt-get install chromium) or set WASMTEST_CHROME")
}
