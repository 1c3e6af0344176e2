package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tgate-web/tgate/internal/chrome"
)

// runBrowser opens the page in a fresh headless Chromium, prints its
// console to stdout, and returns the exit status the program reports.
func runBrowser(ctx context.Context, srv *server) (int, error) {
	bin, err := chrome.Find()
	if err != nil {
		return 0, err
	}
	userDir, err := os.MkdirTemp("", "wasmtest-chrome-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(userDir)

	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(userDir),
	}, chrome.Flags...)
	for _, f := range strings.Fields(os.Getenv("WASMTEST_FLAGS")) {
		name, val, hasVal := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if hasVal {
			opts = append(opts, chromedp.Flag(name, val))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	// Cancelling allocCtx kills the browser process.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()

	// Subscribe before navigating so that no message is lost.
	messages := chromedp.Console(tabCtx)
	if err := chromedp.Do(tabCtx, chromedp.Navigate(srv.url)); err != nil {
		return 0, fmt.Errorf("starting %s: %w", bin, err)
	}
	// The exit status arrives over HTTP, which can overtake the last
	// console messages. To print all output before returning, the runner
	// logs a marker in the page after the exit and waits until the console
	// stream, which keeps its order, delivers it.
	marker := fmt.Sprintf("wasmtest-drained-%d", time.Now().UnixNano())
	drained := make(chan struct{})
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Text == marker {
				close(drained)
				continue
			}
			printConsole(m)
		}
	}()
	select {
	case code := <-srv.exit:
		if _, err := chromedp.Run(tabCtx, chromedp.Evaluate[any](`console.log(`+strconv.Quote(marker)+`)`)); err == nil {
			select {
			case <-drained:
			case <-time.After(10 * time.Second):
				fmt.Fprintln(os.Stderr, "wasmtest: the page's console did not drain; output may be incomplete")
			case <-ctx.Done():
			}
		}
		return code, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// printConsole writes one console message to stdout. Go's wasm_exec.js
// sends the program's stdout and stderr here line by line through
// console.log; other messages (warnings from WebGPU, exceptions) get their
// type as a prefix.
func printConsole(m chromedp.ConsoleMessage) {
	switch {
	case m.Type == chromedp.ConsoleLog || m.Type == chromedp.ConsoleInfo && m.Source == "":
		fmt.Fprintln(os.Stdout, m.Text)
	case m.IsException() && m.Exception != nil && m.Exception.Exception != nil:
		fmt.Fprintf(os.Stdout, "[exception] %s\n%s\n", m.Text, m.Exception.Exception.Description)
	default:
		src := ""
		if m.Source != "" {
			src = " " + m.Source
		}
		fmt.Fprintf(os.Stdout, "[%s%s] %s\n", m.Type, src, m.Text)
	}
}
