//go:build js && wasm

// Package gpu is a small typed Go binding to the browser's WebGPU API
// (https://www.w3.org/TR/webgpu/) over syscall/js: adapters and devices,
// buffers, shader modules, compute pipelines, bind groups, command encoders
// and the queue. It covers what a compute engine needs and nothing else.
//
// Every call into JavaScript goes through this package and is counted
// (Crossings), because a crossing from Go into JS costs far more than a Go
// call; callers keep the count per operation low.
//
// Methods that wait on a JS promise block the calling goroutine on a
// channel; Go's wasm runtime returns to the browser's event loop while it
// waits, so the promise can settle. They must not be called from inside a
// js.FuncOf callback.
package gpu

import (
	"errors"
	"fmt"
	"syscall/js"
)

var crossings uint64

// Crossings returns the number of Go→JS calls (property reads and writes,
// method calls, constructions) this package has made.
func Crossings() uint64 { return crossings }

func jcall(v js.Value, m string, args ...any) js.Value {
	crossings++
	return v.Call(m, args...)
}

func jget(v js.Value, p string) js.Value {
	crossings++
	return v.Get(p)
}

func jset(v js.Value, p string, x any) {
	crossings++
	v.Set(p, x)
}

func jnew(c js.Value, args ...any) js.Value {
	crossings++
	return c.New(args...)
}

var (
	objectCtor     = js.Global().Get("Object")
	arrayCtor      = js.Global().Get("Array")
	uint8ArrayCtor = js.Global().Get("Uint8Array")
)

// object builds a plain JS object from alternating keys and values. Values
// must be JS-convertible (numbers, strings, bools, js.Value).
func object(kv ...any) js.Value {
	o := jnew(objectCtor)
	for i := 0; i+1 < len(kv); i += 2 {
		jset(o, kv[i].(string), kv[i+1])
	}
	return o
}

// array builds a JS array of the given values.
func array(vs ...any) js.Value {
	a := jnew(arrayCtor, len(vs))
	for i, v := range vs {
		crossings++
		a.SetIndex(i, v)
	}
	return a
}

// await blocks until the promise p settles and returns its value, or its
// rejection reason as an error.
func await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var onOK, onErr js.Func
	onOK = js.FuncOf(func(this js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	onErr = js.FuncOf(func(this js.Value, args []js.Value) any {
		err := errors.New("promise rejected")
		if len(args) > 0 {
			err = jsError(args[0])
		}
		ch <- result{err: err}
		return nil
	})
	jcall(p, "then", onOK, onErr)
	r := <-ch
	onOK.Release()
	onErr.Release()
	return r.v, r.err
}

// jsError turns a JS exception or GPUError into a Go error carrying its
// message (and name, when it has one).
func jsError(v js.Value) error {
	if v.Type() != js.TypeObject {
		return fmt.Errorf("%v", v)
	}
	msg := jget(v, "message")
	name := jget(v, "name")
	if msg.Type() == js.TypeString {
		if name.Type() == js.TypeString && name.String() != "" && name.String() != "Error" {
			return fmt.Errorf("%s: %s", name.String(), msg.String())
		}
		return errors.New(msg.String())
	}
	return errors.New(jcall(v, "toString").String())
}

// catch runs f and converts a thrown JS exception (which syscall/js turns
// into a panic of type js.Error) into an error.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = jsError(je.Value)
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}
