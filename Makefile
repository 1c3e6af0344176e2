# tgate-web: common tasks. `make serve` serves the generation page; `make demo`
# runs the pipeline on the CPU; `make test` runs every test (host tests, the
# page and widget in headless Chromium, the JavaScript tests, the WebGPU tests
# inside headless Chromium, the Cloudflare Worker under wrangler).

SHELL   := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO      ?= go
BIN     := bin
WASMEXEC := $(CURDIR)/$(BIN)/wasmtest

.PHONY: all build wasm serve demo test test-host test-js test-browser vet bench fuzz clean

# Address and models folder of `make serve` (see cmd/serve).
ADDR    ?= 127.0.0.1:8080
MODELS  ?= out/models

all: build

build:
	$(GO) build -o $(BIN)/tgate ./cmd/tgate
	$(GO) build -o $(BIN)/wasmtest ./cmd/wasmtest
	$(GO) build -o $(BIN)/serve ./cmd/serve

# The engine of the page: wasm/ compiled for the browser.
wasm:
	GOOS=js GOARCH=wasm $(GO) build -o $(BIN)/tgate.wasm ./wasm

# The generation page on http://$(ADDR)/ with the models of $(MODELS) in the
# Hub's layout; the tiny test model is made on first use.
serve: build wasm
	test -f $(MODELS)/tgate/tiny-sd/model_index.json || $(BIN)/tgate fixture --out $(MODELS)/tgate/tiny-sd
	$(BIN)/serve --addr $(ADDR) --models $(MODELS) --web web --wasm $(BIN)/tgate.wasm

# A whole text-to-image run on the CPU backend with a tiny fixture model in
# the real diffusers layout; writes out/demo.png.
demo: build
	$(BIN)/tgate fixture --out out/tiny-sd
	$(BIN)/tgate generate --model out/tiny-sd --prompt "a photo of an astronaut riding a horse on mars" \
		--steps 10 --scheduler ddim --tgate v2 --gate-step 6 --sp-interval 3 --fi-interval 4 --warm-up 1 \
		--seed 42 --out out/demo.png
	@echo "out/demo.png is noise: the fixture's weights are random. For a real image, give --model a diffusers folder (README)."

vet:
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above"; exit 1)
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./webgpu/... ./cmd/kernelbench/... ./bench/kernels/engine/... ./wasm/... ./hub/browser/... ./internal/jsutil/...

test: vet test-host test-js test-browser test-worker

# Every host package; the CPU backend's conformance suite runs verbosely so
# the log shows it (top-level results and the suite's summary lines). The
# page's end-to-end tests (web/e2e) drive headless Chromium and print each
# test's name.
test-host:
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -Ev '/cpu$$|/web/e2e$$|/web/worker/e2e$$')
	$(GO) test -count=1 -v ./cpu | grep -Ev '^\s*=== (RUN|PAUSE|CONT|NAME)|^\s+--- PASS'
	$(GO) test -count=1 -timeout 40m -v ./web/e2e | grep -Ev '^\s*=== (RUN|PAUSE|CONT|NAME)'

# The page's JavaScript modules that run without a browser (Node's test
# runner).
test-js:
	node --test web/

# The WebGPU backend's tests, compiled to wasm and run in headless Chromium
# (SwiftShader's WebGPU adapter when there is no GPU).
test-browser: build
	GOOS=js GOARCH=wasm $(GO) test -count=1 -timeout 20m -exec $(WASMEXEC) -v ./webgpu/...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./cpu/...
	GOOS=js GOARCH=wasm $(GO) run -exec $(WASMEXEC) ./cmd/kernelbench
	$(MAKE) bench-e2e
	$(MAKE) bench-kernels

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 2m ./safetensors

clean:
	rm -rf $(BIN) out

# ---- The Cloudflare Worker (web/worker; web/worker/README.md) ----

WORKER       := web/worker
WORKER_BUILD := $(WORKER)/build
# make worker-dev: its port, the model origin it proxies (make serve by
# default) and the repositories it serves (comma-separated owner/name).
PORT   ?= 8787
ORIGIN ?= http://127.0.0.1:8080
ALLOW  ?= tgate/tiny-sd
WRANGLER_ENV := CI=true WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

.PHONY: worker worker-deps worker-dev test-worker

# wrangler 4.86.0 (pinned in web/worker/package-lock.json), installed with
# npm ci when missing or older than the lock file.
$(WORKER)/node_modules/.package-lock.json: $(WORKER)/package-lock.json
	cd $(WORKER) && npm ci --no-audit --no-fund
worker-deps: $(WORKER)/node_modules/.package-lock.json

# The Worker in web/worker/build: the glue of workers-assets-gen, the Go
# program (app.wasm) and the site it hosts (the page, the widget, the
# engine and wasm_exec.js, with immutable copies under /v/<version>/).
worker: wasm
	$(GO) tool workers-assets-gen -mode=go -o $(WORKER_BUILD)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o $(WORKER_BUILD)/app.wasm ./$(WORKER)
	$(GO) run ./$(WORKER)/sitegen -web web -wasm $(BIN)/tgate.wasm -out $(WORKER_BUILD)/site
	@echo "app.wasm: $$(stat -c %s $(WORKER_BUILD)/app.wasm) bytes, $$(gzip -9c $(WORKER_BUILD)/app.wasm | wc -c) gzip"

# The Worker on http://127.0.0.1:$(PORT)/ under wrangler dev, with KV and
# R2 simulated in out/worker-state, proxying $(ORIGIN) for $(ALLOW). Run
# `make serve` beside it for the default origin.
worker-dev: worker worker-deps
	mkdir -p out/worker-state
	cd $(WORKER) && { ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; } && \
		$(WRANGLER_ENV) exec node_modules/.bin/wrangler dev --ip 127.0.0.1 --port $(PORT) \
		--var "ORIGIN:$(ORIGIN)" --var "ALLOW:$(ALLOW)" --persist-to $(CURDIR)/out/worker-state

# The Worker's tests: its packages natively, its main package vetted for
# js/wasm, then web/worker/e2e, which runs it under wrangler dev.
test-worker: worker-deps
	GOOS=js GOARCH=wasm $(GO) vet ./$(WORKER)
	$(GO) test -count=1 ./internal/edge/... ./$(WORKER)/sitegen
	$(GO) test -count=1 -timeout 10m -v ./$(WORKER)/e2e | grep -Ev '^\s*=== (RUN|PAUSE|CONT|NAME)'

# ---- T-GATE end to end (cmd/tgatebench; docs/performance.md) ----

# The same generation with T-GATE off, v1 and v2 (gate 10 and 5 of 25) on
# the CPU backend, SD 1.5's real configs with random F16 weights at 16×16
# latents, variants alternating over BENCH_ROUNDS rounds; prints medians,
# speedups next to the MAC ratios, and peak bytes.
BENCH_ROUNDS ?= 3
BENCH_LATENT ?= 16
.PHONY: bench-e2e
bench-e2e:
	$(GO) run ./cmd/tgatebench -rounds $(BENCH_ROUNDS) -latent $(BENCH_LATENT)

# ---- Kernels side by side (bench/kernels; docs/performance.md) ----

# Our WebGPU kernels against TensorFlow.js's WebGPU backend 4.22.0 and ONNX
# Runtime Web 1.31.1's WebGPU EP in one headless Chromium page, on the same
# adapter and seeded inputs, outputs checked against a float64 reference;
# prints a table and `kernel=NAME ours_ms=X tfjs_ms=Y ort_ms=Z ratio=R` per
# kernel. About 6 minutes on SwiftShader. Not part of `make test`.
BENCH_KERNELS       := bench/kernels
BENCH_KERNELS_FLAGS ?= -reps 5 -warmup 1
.PHONY: bench-kernels bench-kernels-deps
$(BENCH_KERNELS)/node_modules/.package-lock.json: $(BENCH_KERNELS)/package-lock.json
	cd $(BENCH_KERNELS) && npm ci --no-audit --no-fund
bench-kernels-deps: $(BENCH_KERNELS)/node_modules/.package-lock.json
bench-kernels: bench-kernels-deps
	$(GO) run ./$(BENCH_KERNELS) $(BENCH_KERNELS_FLAGS)
