// Command kernels (`make bench-kernels`) compares our WebGPU kernels with
// TensorFlow.js's WebGPU backend and ONNX Runtime Web's WebGPU execution
// provider in one headless Chromium page, on the same adapter and the same
// seeded inputs: a Linear with bias, 3×3 convolutions with bias,
// self- and cross-attention and GroupNorm + SiLU at Stable Diffusion 1.5
// shapes (cases.go).
//
// It builds our engine (bench/kernels/engine, the WebGPU backend compiled
// to wasm), writes each case's inputs, float64 reference and ONNX models
// (onnx.go, models.go: no Python), serves them with the page (page/) and
// the npm packages of bench/kernels/node_modules (install them with
// `npm ci` in bench/kernels), drives Chromium through chromedp, checks
// every engine's output against the reference and prints a table and one
// line per kernel:
//
//	kernel=NAME ours_ms=X tfjs_ms=Y ort_ms=Z ratio=R
//
// R is our median over the faster correct other engine's. From the
// repository root:
//
//	go run ./bench/kernels [-reps 5] [-warmup 1] [-run REGEXP] [-engines ours,tfjs,...] [-list]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tgate-web/tgate/internal/chrome"
	"github.com/tgate-web/tgate/internal/wasmexec"
)

func main() {
	reps := flag.Int("reps", 5, "timed reps per engine and case (interleaved across engines)")
	warmup := flag.Int("warmup", 1, "untimed reps per engine and case before the timed ones")
	run := flag.String("run", "", "only the cases whose name matches this regular expression")
	seed := flag.Uint64("seed", 1, "seed of the inputs")
	timeout := flag.Duration("timeout", 30*time.Minute, "overall limit")
	list := flag.Bool("list", false, "list the cases and exit")
	engines := flag.String("engines", "", "comma-separated engines to run (default all: ours,tfjs,ort,ort-mha,ort-mha-cpu)")
	flag.Parse()
	if err := benchmark(*reps, *warmup, *run, *engines, *seed, *timeout, *list); err != nil {
		fmt.Fprintln(os.Stderr, "bench-kernels:", err)
		os.Exit(1)
	}
}

func benchmark(reps, warmup int, run, engines string, seed uint64, timeout time.Duration, list bool) error {
	filter, err := regexp.Compile(run)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}
	root, err := projectRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "bench", "kernels")
	nodeModules := filepath.Join(dir, "node_modules")
	for _, pkg := range []string{"onnxruntime-web", "@tensorflow/tfjs-core", "@tensorflow/tfjs-backend-webgpu"} {
		if _, err := os.Stat(filepath.Join(nodeModules, pkg, "package.json")); err != nil {
			return fmt.Errorf("%s is not installed in %s: run `npm ci` in bench/kernels (make bench-kernels does)", pkg, nodeModules)
		}
	}

	start := time.Now()
	var cases []*benchCase
	for _, c := range allCases(seed) {
		if !filter.MatchString(c.Name) {
			continue
		}
		if engines != "" {
			keep := strings.Split(engines, ",")
			c.Engines = slices.DeleteFunc(c.Engines, func(e string) bool { return !slices.Contains(keep, e) })
		}
		cases = append(cases, c)
	}
	if list {
		describe(os.Stdout, cases)
		return nil
	}
	if len(cases) == 0 {
		return fmt.Errorf("-run %q matches no case (see -list)", run)
	}
	fmt.Printf("%d cases: inputs, float64 references and ONNX models in %.1f s\n", len(cases), time.Since(start).Seconds())

	tmp, err := os.MkdirTemp("", "bench-kernels-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	engine := filepath.Join(tmp, "engine.wasm")
	build := exec.Command(goTool(), "build", "-o", engine, "./bench/kernels/engine")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if err := build.Run(); err != nil {
		return fmt.Errorf("building our engine (GOOS=js GOARCH=wasm ./bench/kernels/engine): %w", err)
	}
	wasmExec, err := wasmexec.Find()
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{"cases": cases, "reps": reps, "warmup": warmup})
	if err != nil {
		return err
	}
	srv, err := startServer(serverConfig{engineWasm: engine, wasmExec: wasmExec, nodeModules: nodeModules, manifest: manifest, cases: cases})
	if err != nil {
		return err
	}
	defer srv.close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	info, err := drive(ctx, srv.url, srv.done)
	if err != nil {
		return err
	}
	if info.Error != "" {
		return fmt.Errorf("the page stopped: %s", info.Error)
	}
	results := map[string][]result{}
	srv.mu.Lock()
	for _, c := range cases {
		results[c.Name] = evaluate(c, srv.outputs[c.Name], srv.timings[c.Name])
	}
	srv.mu.Unlock()
	report(os.Stdout, info, cases, results, reps, warmup)
	return nil
}

// drive opens the page in a fresh headless Chromium (internal/chrome's
// WebGPU flags), prints its console, and waits for its /done report.
func drive(ctx context.Context, url string, done <-chan pageInfo) (pageInfo, error) {
	bin, err := chrome.Find()
	if err != nil {
		return pageInfo{}, err
	}
	userDir, err := os.MkdirTemp("", "bench-kernels-chrome-")
	if err != nil {
		return pageInfo{}, err
	}
	defer os.RemoveAll(userDir)
	opts := append([]chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.UserDataDir(userDir)}, chrome.Flags...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	messages := chromedp.Console(tabCtx)
	if err := chromedp.Do(tabCtx, chromedp.Navigate(url)); err != nil {
		return pageInfo{}, fmt.Errorf("starting %s: %w", bin, err)
	}
	// The /done report can overtake the last console messages: after it,
	// log a marker and wait for the console stream, which keeps its order,
	// to deliver it.
	marker := fmt.Sprintf("bench-kernels-drained-%d", time.Now().UnixNano())
	drained := make(chan struct{})
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			switch {
			case m.Text == marker:
				close(drained)
			case m.Type == chromedp.ConsoleLog:
				fmt.Println(m.Text)
			case m.IsException() && m.Exception != nil && m.Exception.Exception != nil:
				fmt.Printf("[exception] %s\n%s\n", m.Text, m.Exception.Exception.Description)
			default:
				fmt.Printf("[%s] %s\n", m.Type, m.Text)
			}
		}
	}()
	select {
	case info := <-done:
		if _, err := chromedp.Run(tabCtx, chromedp.Evaluate[any](`console.log(`+strconv.Quote(marker)+`)`)); err == nil {
			select {
			case <-drained:
			case <-time.After(10 * time.Second):
			}
		}
		return info, nil
	case <-ctx.Done():
		return pageInfo{}, fmt.Errorf("the page did not finish: %w (raise -timeout)", ctx.Err())
	}
}

// projectRoot returns the nearest directory at or above the working
// directory that holds go.mod.
func projectRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod at or above %s: run from the repository", wd)
		}
	}
}

// goTool is the go command: $GO when set (the Makefile's), else "go".
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}
