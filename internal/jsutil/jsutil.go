//go:build js && wasm

// Package jsutil holds the few syscall/js helpers the browser side of the
// engine shares: waiting for a promise, and JS errors as Go errors that
// keep the code the JavaScript side gave them.
package jsutil

import (
	"errors"
	"fmt"
	"syscall/js"
)

// Error is a rejected promise or thrown exception: its message, and the
// `code` property when the JS error had one (StoreError's "download",
// "quota").
type Error struct {
	Code, Name, Message string
}

func (e *Error) Error() string {
	if e.Name != "" && e.Name != "Error" && e.Name != "StoreError" {
		return e.Name + ": " + e.Message
	}
	return e.Message
}

// ErrorOf converts a JS value thrown or rejected into an *Error.
func ErrorOf(v js.Value) error {
	if v.Type() != js.TypeObject {
		return &Error{Message: fmt.Sprint(v)}
	}
	e := &Error{}
	if m := v.Get("message"); m.Type() == js.TypeString {
		e.Message = m.String()
	} else {
		e.Message = v.Call("toString").String()
	}
	if n := v.Get("name"); n.Type() == js.TypeString {
		e.Name = n.String()
	}
	if c := v.Get("code"); c.Type() == js.TypeString {
		e.Code = c.String()
	}
	return e
}

// CodeOf returns the JS code carried by err, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Await blocks the calling goroutine until the promise p settles and
// returns its value, or its rejection as an *Error. It must not be called
// on the goroutine of a JS callback.
func Await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	onOK := js.FuncOf(func(this js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	onErr := js.FuncOf(func(this js.Value, args []js.Value) any {
		var err error = &Error{Message: "promise rejected"}
		if len(args) > 0 {
			err = ErrorOf(args[0])
		}
		ch <- result{err: err}
		return nil
	})
	p.Call("then", onOK, onErr)
	r := <-ch
	onOK.Release()
	onErr.Release()
	return r.v, r.err
}

// Call calls obj.method(args...) and converts a thrown exception into an
// error.
func Call(obj js.Value, method string, args ...any) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = ErrorOf(je.Value)
				return
			}
			panic(r)
		}
	}()
	return obj.Call(method, args...), nil
}

// Bytes copies a JS ArrayBuffer or Uint8Array into a new Go slice.
func Bytes(v js.Value) []byte {
	u8 := v
	if v.InstanceOf(js.Global().Get("ArrayBuffer")) {
		u8 = js.Global().Get("Uint8Array").New(v)
	}
	out := make([]byte, u8.Get("byteLength").Int())
	js.CopyBytesToGo(out, u8)
	return out
}

// Uint8Array copies b into a new JS Uint8Array.
func Uint8Array(b []byte) js.Value {
	u8 := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u8, b)
	return u8
}
