# tgate-web: common tasks. `make demo` runs the pipeline on the CPU; `make test`
# runs every test (host tests, then the WebGPU tests inside headless Chromium).

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
	GOOS=js GOARCH=wasm $(GO) vet ./webgpu/... ./cmd/kernelbench/... ./wasm/... ./hub/browser/... ./internal/jsutil/...

test: vet test-host test-js test-browser

# Every host package; the CPU backend's conformance suite runs verbosely so
# the log shows it (top-level results and the suite's summary lines). The
# page's end-to-end tests (web/e2e) drive headless Chromium and print each
# test's name.
test-host:
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/cpu$$' | grep -v '/web/e2e$$')
	$(GO) test -count=1 -v ./cpu | grep -Ev '^\s*=== (RUN|PAUSE|CONT|NAME)|^\s+--- PASS'
	$(GO) test -count=1 -timeout 20m -v ./web/e2e | grep -Ev '^\s*=== (RUN|PAUSE|CONT|NAME)'

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

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 2m ./safetensors

clean:
	rm -rf $(BIN) out
