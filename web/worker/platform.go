//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall/js"
	"time"

	"github.com/syumai/workers/cloudflare/cache"
	"github.com/syumai/workers/cloudflare/fetch"
	"github.com/syumai/workers/cloudflare/r2"

	"github.com/tgate-web/tgate/internal/edge/server"
	"github.com/tgate-web/tgate/internal/jsutil"
)

// globalThis is the runtime's real global object. syumai/workers hands Go
// a Proxy of it, and the runtime's fetch refuses to be called with the
// Proxy as `this` ("Illegal invocation").
func globalThis() js.Value { return js.Global().Get("globalThis") }

// fetcher is a server.Fetcher over an object with a fetch method: the
// global fetch (the network) or a service binding (the static assets).
// Redirects are not followed: the answer comes back as it is.
type fetcher struct{ c *fetch.Client }

func newFetcher(binding js.Value) fetcher {
	return fetcher{c: fetch.NewClient(fetch.WithBinding(binding))}
}

// Fetch sends req and returns the answer with its header values joined
// again (see joinHeaders). Its body stays a JS stream that passes through
// to the client, or into the cache, without entering Go.
func (f fetcher) Fetch(ctx context.Context, req *http.Request) (*http.Response, error) {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	res, err := f.c.Do(&fetch.Request{Request: req}, &fetch.RequestInit{Redirect: fetch.RedirectModeManual})
	if err != nil {
		return nil, err
	}
	joinHeaders(res.Header)
	if res.Body == nil {
		res.Body = io.NopCloser(bytes.NewReader(nil))
	}
	return res, nil
}

// rawBody is the JS stream behind a body that came from the runtime.
type rawBody interface{ GetRawJSBody() js.Value }

// rawWriter takes a JS value as the answer's body.
type rawWriter interface{ WriteRawJSBody(js.Value) }

// edgeCache is the Cache API's default cache.
type edgeCache struct{}

// Match returns the cached answer for key; with a Range header the
// runtime cuts a 206 from the stored whole.
func (edgeCache) Match(ctx context.Context, key, rng string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, key, nil)
	if err != nil {
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	res, err := cache.New().Match(req, nil)
	if errors.Is(err, cache.ErrCacheNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	joinHeaders(res.Header)
	return res, nil
}

// Put stores resp under key and waits until the cache has read the whole
// body. A body that came from fetch goes to the cache as its JS stream;
// any other is copied once.
func (edgeCache) Put(ctx context.Context, key string, resp *http.Response) error {
	defer resp.Body.Close()
	var body js.Value
	if rb, ok := resp.Body.(rawBody); ok {
		body = rb.GetRawJSBody()
	} else {
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body = jsutil.Uint8Array(data)
	}
	headers := js.Global().Get("Headers").New()
	for k, vs := range resp.Header {
		for _, v := range vs {
			headers.Call("append", k, v)
		}
	}
	init := js.Global().Get("Object").New()
	init.Set("status", resp.StatusCode)
	init.Set("headers", headers)
	jsResp := js.Global().Get("Response").New(body, init)
	jsReq := js.Global().Get("Request").New(key)
	p, err := jsutil.Call(globalThis().Get("caches").Get("default"), "put", jsReq, jsResp)
	if err != nil {
		return err
	}
	_, err = jsutil.Await(p)
	return err
}

// bucket is the R2 bucket of shares.
type bucket struct{ b *r2.Bucket }

func newBucket(name string) (bucket, error) {
	b, err := r2.NewBucket(name)
	if err != nil {
		return bucket{}, fmt.Errorf("R2 binding %s: %w", name, err)
	}
	return bucket{b}, nil
}

// Get returns the object under key; its body stays a JS stream.
func (b bucket) Get(_ context.Context, key string) (*server.Object, error) {
	o, err := b.b.Get(key)
	if err != nil || o == nil {
		return nil, err
	}
	body, ok := o.Body.(io.ReadCloser)
	if !ok {
		body = io.NopCloser(o.Body)
	}
	return &server.Object{Body: body, Size: int64(o.Size), ContentType: o.HTTPMetadata.ContentType}, nil
}

// Put stores data under key with its content type.
func (b bucket) Put(_ context.Context, key string, data []byte, contentType string) error {
	_, err := b.b.Put(key, io.NopCloser(bytes.NewReader(data)), &r2.PutOptions{HTTPMetadata: r2.HTTPMetadata{ContentType: contentType}})
	return err
}

// missingBucket answers every call with the error of a missing binding.
type missingBucket struct{ err error }

func (m missingBucket) Get(context.Context, string) (*server.Object, error) { return nil, m.err }

func (m missingBucket) Put(context.Context, string, []byte, string) error { return m.err }

// kv is a KV namespace as the rate limiter's store.
type kv struct {
	ns   js.Value
	name string
}

func newKV(name string) kv {
	return kv{ns: envBinding(name), name: name}
}

// envBinding returns a binding of the environment, or undefined.
func envBinding(name string) js.Value {
	env := js.Global().Get("context").Get("env")
	if env.IsUndefined() {
		return js.Undefined()
	}
	return env.Get(name)
}

// Get returns key's text, and whether it is there.
func (k kv) Get(_ context.Context, key string) (string, bool, error) {
	if k.ns.IsUndefined() {
		return "", false, fmt.Errorf("KV binding %s is missing", k.name)
	}
	p, err := jsutil.Call(k.ns, "get", key)
	if err != nil {
		return "", false, err
	}
	v, err := jsutil.Await(p)
	if err != nil || v.IsNull() || v.IsUndefined() {
		return "", false, err
	}
	return v.String(), true, nil
}

// Put sets key to value, expiring after ttl (whole seconds).
func (k kv) Put(_ context.Context, key, value string, ttl time.Duration) error {
	if k.ns.IsUndefined() {
		return fmt.Errorf("KV binding %s is missing", k.name)
	}
	opts := js.Global().Get("Object").New()
	opts.Set("expirationTtl", int(ttl.Seconds()))
	p, err := jsutil.Call(k.ns, "put", key, value, opts)
	if err != nil {
		return err
	}
	_, err = jsutil.Await(p)
	return err
}
