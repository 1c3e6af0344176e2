//go:build js && wasm

// Command engine exposes the WebGPU backend's kernels to the kernel
// comparison page of `make bench-kernels` (bench/kernels), so that our
// kernels run in the same page, on the same adapter, as TensorFlow.js's
// and ONNX Runtime Web's. It installs globalThis.tgateBench:
//
//	init() → Promise<string>            creates the backend; resolves to the adapter
//	setup(kind, params, inputs) → Promise  uploads one case's inputs
//	run() → Promise<Float32Array>       runs the case's op and reads its output back
//	teardown() → Promise                frees the case's tensors
//
// kind is "linear", "conv", "attention" or "groupnorm"; params holds heads,
// groups and eps; inputs is an array of {name, shape, data: Float32Array}
// (see bench/kernels/cases.go for each kind's inputs).
package main

import (
	"fmt"
	"syscall/js"
	"unsafe"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
	"github.com/tgate-web/tgate/webgpu"
)

// engine holds the backend and the current case.
type engine struct {
	b      *webgpu.Backend
	inputs map[string]backend.Tensor
	op     func() backend.Tensor
}

func main() {
	e := &engine{}
	api := js.Global().Get("Object").New()
	api.Set("init", async(func(args []js.Value) (any, error) { return e.init() }))
	api.Set("setup", async(func(args []js.Value) (any, error) { return nil, e.setup(args[0].String(), args[1], args[2]) }))
	api.Set("run", async(func(args []js.Value) (any, error) { return e.run() }))
	api.Set("teardown", async(func(args []js.Value) (any, error) { e.teardown(); return nil, nil }))
	js.Global().Set("tgateBench", api)
	select {}
}

// async wraps f as a JS function returning a Promise, running f on its own
// goroutine (the backend blocks on GPU promises, which a JS callback's
// goroutine must not do).
func async(f func(args []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(this js.Value, args []js.Value) any {
		return js.Global().Get("Promise").New(js.FuncOf(func(_ js.Value, pr []js.Value) any {
			resolve, reject := pr[0], pr[1]
			go func() {
				v, err := f(args)
				if err != nil {
					reject.Invoke(js.Global().Get("Error").New(err.Error()))
					return
				}
				resolve.Invoke(v)
			}()
			return nil
		}))
	})
}

func (e *engine) init() (any, error) {
	b, err := webgpu.New(webgpu.Options{})
	if err != nil {
		return nil, err
	}
	e.b = b
	return b.AdapterInfo().String(), nil
}

// setup uploads a case's inputs (as F32) and binds the op the case times.
func (e *engine) setup(kind string, params, inputs js.Value) error {
	if e.b == nil {
		return fmt.Errorf("tgateBench.setup: call init first")
	}
	e.teardown()
	e.inputs = map[string]backend.Tensor{}
	for i := range inputs.Length() {
		in := inputs.Index(i)
		var shape tensor.Shape
		for j := range in.Get("shape").Length() {
			shape = append(shape, in.Get("shape").Index(j).Int())
		}
		t, err := e.b.UploadJS(tensor.F32, shape, in.Get("data"))
		if err != nil {
			return fmt.Errorf("tgateBench.setup: input %s %v: %w", in.Get("name").String(), shape, err)
		}
		e.inputs[in.Get("name").String()] = t
	}
	in := func(name string) backend.Tensor {
		t, ok := e.inputs[name]
		if !ok {
			panic(fmt.Sprintf("tgateBench: a %s case needs input %q", kind, name))
		}
		return t
	}
	b := e.b
	switch kind {
	case "linear":
		x, w, bias := in("x"), in("w"), in("b")
		e.op = func() backend.Tensor { return b.MatMul(x, w, bias, backend.MatMulOpts{TransB: true}) }
	case "conv":
		x, w, bias := in("x"), in("w"), in("b")
		e.op = func() backend.Tensor { return b.Conv2D(x, w, bias, backend.Conv2DOpts{Padding: 1}) }
	case "attention":
		q, k, v := in("q"), in("k"), in("v")
		heads := params.Get("heads").Int()
		e.op = func() backend.Tensor { return b.Attention(q, k, v, nil, backend.AttentionOpts{Heads: heads}) }
	case "groupnorm":
		x, g, beta := in("x"), in("gamma"), in("beta")
		groups, eps := params.Get("groups").Int(), float32(params.Get("eps").Float())
		e.op = func() backend.Tensor { return b.GroupNorm(x, g, beta, groups, eps, true) }
	default:
		return fmt.Errorf("tgateBench.setup: unknown kind %q (want linear, conv, attention or groupnorm)", kind)
	}
	return b.Sync()
}

// run dispatches the op, reads the output back and returns it as a
// Float32Array.
func (e *engine) run() (any, error) {
	if e.op == nil {
		return nil, fmt.Errorf("tgateBench.run: call setup first")
	}
	y := e.op()
	h, err := e.b.ReadBack(y)
	e.b.Free(y)
	if err != nil {
		return nil, err
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(h.Data))), 4*len(h.Data))
	u8 := js.Global().Get("Uint8Array").New(len(raw))
	js.CopyBytesToJS(u8, raw)
	return js.Global().Get("Float32Array").New(u8.Get("buffer")), nil
}

func (e *engine) teardown() {
	for _, t := range e.inputs {
		e.b.Free(t)
	}
	e.inputs, e.op = nil, nil
}
