// The Worker's entry module: it starts the Go program (build/app.wasm, from
// web/worker) once per isolate and hands it every request.
//
// syumai/workers' generated build/worker.mjs instantiates a fresh Go
// program for each request. That costs the Go runtime's start (tens of
// milliseconds of CPU) on every request and a whole Go heap (about 6 MB)
// per request in flight, so a few dozen concurrent requests would exceed
// an isolate's 128 MB. Here one program serves them all: each request is
// a goroutine (web/worker/main.go keeps the program alive by never
// closing a response through the pipe that would end it). The glue it
// uses is still the generated one: wasm_exec.js (Go's, with the runtime
// context) and runtime.mjs (the compiled module and the context object).
import "./build/wasm_exec.js";
import { createRuntimeContext, loadModule } from "./build/runtime.mjs";

// syumai/workers calls this to catch exceptions thrown by JS calls.
globalThis.tryCatch = (fn) => {
  try {
    return { result: fn() };
  } catch (e) {
    return { error: e };
  }
};

// started resolves to the binding object of the running Go program, on
// which it has registered handleRequest; undefined until the first request,
// and again after the program has exited (it then starts anew).
let started;

/** Starts the Go program, or returns the one already running. */
function start(env, ctx) {
  if (started) return started;
  const binding = {};
  started = (async () => {
    const mod = await loadModule();
    const go = new Go();
    let ready;
    const readyPromise = new Promise((resolve) => {
      ready = resolve;
    });
    const instance = new WebAssembly.Instance(mod, {
      ...go.importObject,
      workers: { ready: () => ready() },
    });
    const exited = go.run(instance, createRuntimeContext({ env, ctx, binding }));
    exited.finally(() => {
      started = undefined;
    });
    await Promise.race([readyPromise, exited.then(() => Promise.reject(new Error("the Go program exited while starting")))]);
    return binding;
  })();
  started.catch(() => {
    started = undefined;
  });
  return started;
}

export default {
  async fetch(req, env, ctx) {
    const binding = await start(env, ctx);
    return binding.handleRequest(req);
  },
};
