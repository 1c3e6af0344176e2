// tgate.js: the JavaScript API of tgate-web (docs/js-api.md). It owns a
// dedicated Web Worker running the Go engine on WebGPU; pages and the
// widget use only this module.
//
//   import { createEngine } from "/tgate.js";
//   const engine = await createEngine({ onProgress });
//   await engine.load("owner/name");
//   const r = await engine.generate({ prompt: "a red fox", tgate: { mode: "v2" } });

export { readParameters } from "./params.js";
import { list as storeList, remove as storeRemove } from "./store.js";
import { shapeGenerate, checkMaskSize, checkLoad } from "./options.js";
import { toRGBA } from "./imagedata.js";

// listCachedModels lists the models stored in this browser ([{ model,
// files, bytes }]); it needs no engine (and no WebGPU).
export function listCachedModels() { return storeList(); }

// deleteCachedModel removes every stored file of a model.
export function deleteCachedModel(model) { return storeRemove(model); }

// EngineError is every rejection of the API: code is one of "no-webgpu",
// "adapter", "wont-fit", "download", "bad-model", "quota", "device-lost",
// "cancelled", "busy", "bad-request", "internal"; message is for people.
export class EngineError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "EngineError";
    this.code = code;
  }
}

// asEngineError turns an options problem (options.js's BadRequest) into an EngineError.
function asEngineError(e) {
  if (e && e.code === "bad-request" && !(e instanceof EngineError)) return new EngineError("bad-request", e.message);
  return e;
}

// prepareGenerate checks the generate options and decodes initImage and mask into
// { width, height, data } RGBA (docs/js-api.md); it returns the JSON options, the images and the
// buffers to transfer to the Worker.
async function prepareGenerate(rest) {
  try {
    const { opts, initImage, mask } = shapeGenerate(rest);
    const images = { initImage: null, mask: null };
    if (initImage) images.initImage = await toRGBA(initImage, "initImage");
    if (mask) images.mask = await toRGBA(mask, "mask");
    if (images.initImage) checkMaskSize(images.initImage, images.mask);
    const transfer = [images.initImage, images.mask].filter(Boolean).map((im) => im.data.buffer);
    return { opts, images, transfer };
  } catch (e) {
    throw asEngineError(e);
  }
}

// createEngine starts the Worker and the WebGPU device.
export async function createEngine(options = {}) {
  const e = new Engine(options);
  await e._start();
  return e;
}

// workerURL is where the engine's Worker starts. A Worker script must
// come from the page's own origin, so where tgate.js is served from another
// one (the widget embedded on another site) the Worker is a module from a
// blob: URL that imports the engine's Worker script (served with CORS).
function workerURL(url) {
  if (url.origin === location.origin) return url;
  const src = `import ${JSON.stringify(url.href)};`;
  return URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
}

const noWebGPU = "this browser has no WebGPU: use a recent Chrome or Edge (or Safari 26, Firefox 141 on Windows), over https or on localhost";

export class Engine {
  constructor(options) {
    this.options = options;
    this.base = options.base ? new URL(options.base, location.href) : new URL(".", import.meta.url);
    this.adapter = null;
    this.model = null;
    this._pending = new Map();
    this._nextId = 1;
    this._queue = Promise.resolve();
    this._lastLoad = null;
    this._needReload = false;
    this._closed = false;
    this._ready = Promise.resolve();
  }

  async _start() {
    if (!globalThis.navigator || !navigator.gpu) throw new EngineError("no-webgpu", noWebGPU);
    this._status("starting the engine");
    this.worker = new Worker(workerURL(new URL("engine-worker.js", this.base)), { type: "module", name: "tgate-engine" });
    this.worker.onmessage = (ev) => this._onMessage(ev.data);
    this.worker.onerror = (ev) => {
      ev.preventDefault();
      this._failAll(new EngineError("internal", `the engine's Worker failed: ${ev.message || "script error"}`));
    };
    this.adapter = await this._call("init", [{ hub: this.options.hub || "" }]);
    this._status("engine ready: " + (this.adapter.description || this.adapter.vendor || "WebGPU adapter"));
  }

  _status(message) { this._emit(null, { type: "status", message }); }

  _emit(call, ev) {
    if (call && call.onProgress) {
      try { call.onProgress(ev); } catch (e) { console.error(e); }
    }
    if (this.options.onProgress) {
      try { this.options.onProgress(ev); } catch (e) { console.error(e); }
    }
  }

  _call(method, args, onProgress, transfer = []) {
    if (this._closed) return Promise.reject(new EngineError("internal", "the engine is closed"));
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, method, args }, transfer);
    });
  }

  _onMessage({ id, result, error, event }) {
    const call = this._pending.get(id);
    if (event) {
      this._emit(call, event);
      return;
    }
    if (!call) return;
    this._pending.delete(id);
    if (error) {
      const err = new EngineError(error.code || "internal", error.message || "engine error");
      call.reject(err);
      if (err.code === "device-lost") this._restart().catch(() => {});
      return;
    }
    call.resolve(result);
  }

  _failAll(err) {
    for (const [, call] of this._pending) call.reject(err);
    this._pending.clear();
  }

  // _restart replaces a Worker whose GPU device was lost; the next
  // generate reloads the model (from the browser cache).
  async _restart() {
    this._status("the GPU device was lost: restarting the engine");
    this.worker.terminate();
    this._failAll(new EngineError("device-lost", "the GPU device was lost"));
    this.model = null;
    this._needReload = !!this._lastLoad;
    this._ready = this._start().catch((e) => {
      this._status("the engine could not restart: " + e.message);
      throw e;
    });
    return this._ready;
  }

  // _serial runs calls one after another, so two pages' widgets or a
  // double click never find the engine busy.
  _serial(f) {
    const p = this._queue.then(f, f);
    this._queue = p.catch(() => {});
    return p;
  }

  // load resolves a model source and puts its weights on the GPU.
  load(source, options = {}) {
    return this._serial(async () => {
      await this._ready;
      const { onProgress, ...rest } = options;
      try {
        checkLoad(source, rest);
      } catch (e) {
        throw asEngineError(e);
      }
      const info = await this._call("load", [source, rest], onProgress);
      this.model = info;
      this._lastLoad = [source, rest];
      this._needReload = false;
      return info;
    });
  }

  // generate makes one image; see docs/js-api.md for the options. initImage and mask are
  // decoded to RGBA here, so the Worker gets plain pixels.
  generate(options = {}) {
    return this._serial(async () => {
      await this._ready;
      const { onProgress, latents, ...rest } = options || {};
      if (latents !== undefined && latents !== null && !(latents instanceof Float32Array)) {
        throw new EngineError("bad-request", "latents must be a Float32Array [1, C, H/8, W/8]");
      }
      const { opts, images, transfer } = await prepareGenerate(rest);
      if (this._needReload) await this._reload(onProgress);
      if (latents) opts.latents = latents.slice();
      return this._call("generate", [opts, images], onProgress, transfer);
    });
  }

  async _reload(onProgress) {
    const [source, rest] = this._lastLoad;
    const info = await this._call("load", [source, rest], onProgress);
    this.model = info;
    this._needReload = false;
  }

  // cancel stops the running generation within a step; its promise
  // rejects with code "cancelled".
  cancel() {
    if (!this._closed) this.worker.postMessage({ id: 0, method: "cancel", args: [] });
  }

  // close terminates the Worker and frees the GPU.
  close() {
    if (this._closed) return;
    this._closed = true;
    this.worker.terminate();
    this._failAll(new EngineError("cancelled", "the engine was closed"));
  }

  // _loseDevice destroys the engine's GPU device, as a driver reset would
  // (for tests of the device-lost path); the next call then fails with
  // "device-lost" and the engine restarts.
  _loseDevice() { return this._call("loseDevice", []); }

  // cacheList lists the stored models: [{ model, files, bytes }].
  cacheList() { return this._call("cacheList", []); }

  // cacheDelete removes every stored file of a model.
  cacheDelete(model) { return this._call("cacheDelete", [model]); }
}
