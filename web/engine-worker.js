// The engine's dedicated Worker: it runs the Go engine (tgate.wasm, built
// from wasm/) next to the model store, so the page's main thread never
// blocks. Messages from tgate.js are { id, method, args }; answers are
// { id, result } or { id, error: { code, message } }, and progress events
// { id, event } while a call runs.

import * as store from "./store.js";

const base = new URL(".", import.meta.url);
globalThis.tgateStore = {
  fetchAPI: store.fetchAPI,
  fetchSmall: store.fetchSmall,
  fetchFile: store.fetchFile,
  exists: store.exists,
};

// start loads wasm_exec.js and the engine; it resolves once the Go side
// has registered globalThis.tgateGo.
async function start() {
  await import(new URL("wasm_exec.js", base).href);
  const go = new globalThis.Go();
  const ready = new Promise((resolve) => { globalThis.tgateGoReady = resolve; });
  const url = new URL("tgate.wasm", base).href;
  const resp = await fetch(url);
  if (!resp.ok) {
    const text = (await resp.text()).slice(0, 300);
    throw Object.assign(new Error(`the engine (${url}) could not be loaded: HTTP ${resp.status} ${text}`), { code: "internal" });
  }
  const { instance } = await WebAssembly.instantiateStreaming(resp, go.importObject);
  go.run(instance).then(() => {
    postMessage({ id: 0, event: { type: "status", message: "the engine stopped" } });
  });
  await ready;
  return globalThis.tgateGo;
}

const engine = start();
store.dropPartials().catch(() => {});

function errorOf(e) {
  if (e && typeof e === "object" && "code" in e) return { code: e.code || "internal", message: e.message || String(e) };
  return { code: "internal", message: (e && e.message) || String(e) };
}

// eventOut turns the engine's progress event into a message payload (a
// preview's bytes become a PNG Blob).
function eventOut(ev) {
  if (ev && ev.preview instanceof Uint8Array) ev.preview = new Blob([ev.preview], { type: "image/png" });
  return ev;
}

async function handle(id, method, args) {
  const progress = (ev) => postMessage({ id, event: eventOut(ev) });
  switch (method) {
    case "init": {
      const go = await engine;
      return go.init(JSON.stringify(args[0] || {}));
    }
    case "load": {
      const go = await engine;
      return go.load(String(args[0] || ""), JSON.stringify(args[1] || {}), progress);
    }
    case "generate": {
      const go = await engine;
      // args[1] holds initImage and mask, each { width, height, data } RGBA or null
      // (tgate.js decoded them); they go to the engine beside the JSON options.
      const { latents, ...opts } = args[0] || {};
      const images = args[1] || {};
      const r = await go.generate(JSON.stringify(opts), latents || null, progress, {
        initImage: images.initImage || null,
        mask: images.mask || null,
      });
      return {
        ...r.meta,
        png: r.png ? new Blob([r.png], { type: "image/png" }) : null,
        latents: r.latents || null,
      };
    }
    case "cancel": {
      const go = await engine;
      go.cancel();
      return null;
    }
    case "loseDevice": {
      const go = await engine;
      return go.loseDevice();
    }
    case "cacheList":
      return store.list();
    case "cacheDelete":
      return store.remove(String(args[0]));
  }
  throw { code: "bad-request", message: `unknown engine method ${method}` };
}

self.onmessage = async (ev) => {
  const { id, method, args } = ev.data || {};
  try {
    const result = await handle(id, method, args || []);
    if (id) postMessage({ id, result });
  } catch (e) {
    if (id) postMessage({ id, error: errorOf(e) });
  }
};
