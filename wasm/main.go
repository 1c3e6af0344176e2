//go:build js && wasm

// Command wasm is the engine of the JavaScript API (docs/js-api.md),
// compiled to tgate.wasm and run inside a dedicated Web Worker
// (web/engine-worker.js). It registers globalThis.tgateGo with init, load,
// generate and cancel; each returns a Promise and reports progress through
// a callback. Errors reject with { code, message } (the codes of
// EngineError).
package main

import (
	"context"
	"errors"
	"strings"
	"syscall/js"

	"github.com/tgate-web/tgate/internal/jsutil"
	"github.com/tgate-web/tgate/pipeline"
	"github.com/tgate-web/tgate/webgpu"
)

func main() {
	e := &engine{}
	api := js.Global().Get("Object").New()
	api.Set("init", promiseFunc(func(args []js.Value) (any, error) { return e.init(arg(args, 0)) }))
	api.Set("load", promiseFunc(func(args []js.Value) (any, error) {
		return e.load(arg(args, 0).String(), arg(args, 1).String(), arg(args, 2))
	}))
	api.Set("generate", promiseFunc(func(args []js.Value) (any, error) {
		return e.generate(arg(args, 0).String(), arg(args, 1), arg(args, 2), arg(args, 3))
	}))
	api.Set("cancel", js.FuncOf(func(js.Value, []js.Value) any { e.cancelRun(); return nil }))
	// loseDevice destroys the GPU device, as a driver reset or the browser
	// reclaiming memory would: a test hook for the device-lost path.
	api.Set("loseDevice", promiseFunc(func([]js.Value) (any, error) {
		if e.b != nil {
			e.b.Close()
		}
		return nil, nil
	}))
	js.Global().Set("tgateGo", api)
	if ready := js.Global().Get("tgateGoReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}

func arg(args []js.Value, i int) js.Value {
	if i < len(args) {
		return args[i]
	}
	return js.Undefined()
}

// promiseFunc wraps f as a JS function returning a Promise; f runs on its
// own goroutine, so it may wait for other promises (GPU readbacks,
// downloads).
func promiseFunc(f func(args []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(this js.Value, args []js.Value) any {
		var resolve, reject js.Value
		executor := js.FuncOf(func(this js.Value, a []js.Value) any {
			resolve, reject = a[0], a[1]
			return nil
		})
		p := js.Global().Get("Promise").New(executor)
		executor.Release()
		go func() {
			v, err := run(f, args)
			if err != nil {
				reject.Invoke(js.ValueOf(map[string]any{"code": codeOf(err), "message": err.Error()}))
				return
			}
			resolve.Invoke(v)
		}()
		return p
	})
}

// run calls f, turning a panic into an internal error so one bad call
// does not stop the engine.
func run(f func([]js.Value) (any, error), args []js.Value) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = coded("internal", jsutil.ErrorOf(je.Value))
				return
			}
			err = coded("internal", errors.New("internal error: "+strings.TrimSpace(strings.SplitN(stringOf(r), "\n", 2)[0])))
		}
	}()
	return f(args)
}

func stringOf(r any) string {
	if e, ok := r.(error); ok {
		return e.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return "panic"
}

// codedError is an error with the code of EngineError.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func coded(code string, err error) error {
	if err == nil {
		return nil
	}
	var c *codedError
	if errors.As(err, &c) {
		return err
	}
	return &codedError{code, err}
}

// codeOf classifies an error for the page.
func codeOf(err error) string {
	var c *codedError
	var limit *webgpu.LimitError
	var req *pipeline.RequestError
	switch {
	case errors.As(err, &c):
		return c.code
	case errors.As(err, &req):
		return "bad-request"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case jsutil.CodeOf(err) != "":
		return jsutil.CodeOf(err)
	case errors.As(err, &limit):
		return "adapter"
	}
	return "internal"
}
