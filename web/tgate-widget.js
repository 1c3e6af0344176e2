// tgate-widget.js: the <tgate-image> element, text to image on any site.
//
//   <script type="module" src="https://<host>/tgate-widget.js"></script>
//   <tgate-image model="stabilityai/sd-turbo" prompt="a red fox" steps="2" guidance="0" tgate="v2"></tgate-image>
//
// Each element lives in its own shadow root: a prompt box (left out when
// `prompt` is fixed and `autorun` is set), a progress bar, the image and a
// download link. All elements on a page share one engine (tgate.js next to
// this file: one Worker, one WebGPU device) holding one model at a time;
// their runs are queued and a model is loaded again only when a run needs
// another one than the loaded model.
//
// Attributes: model, hub, prompt, negative-prompt, steps, guidance, seed,
// width, height, scheduler, tgate (off | v1 | v2), gate-step, decoder
// (vae | taesd | none), taesd (the TAESD decoder's source, for
// decoder="taesd"), autorun. Unset settings take the engine's defaults
// (docs/js-api.md), except seed: a run without one draws a random seed.
// `hub` and a model folder URL may be relative to the page.
//
// Events (bubbling, composed): tgate-progress (detail: the engine's progress
// event), tgate-done (detail: { png, result }), tgate-error (detail:
// { code, message }). Every run ends in exactly one tgate-done or tgate-error.
// el.run() starts a run (a newer run of the same element replaces its
// older one) and el.stop() cancels it.
//
// The page may style it through CSS custom properties (--tgate-accent,
// --tgate-bg, --tgate-fg, --tgate-muted, --tgate-border) and ::part() (card,
// form, prompt, button, stop, message, frame, image, progress, status, info,
// download); the element touches no style outside its shadow root.

const TAG = "tgate-image";
const DEFAULT_TAESD = "madebyollin/taesd";

const ATTRIBUTES = [
  "model", "hub", "prompt", "negative-prompt", "steps", "guidance", "seed", "width", "height",
  "scheduler", "tgate", "gate-step", "decoder", "taesd", "autorun",
];

const MESSAGES = {
  "no-webgpu":
    "This browser cannot run the image generator: it needs WebGPU. Use a recent Chrome or Edge " +
    "(on Linux, with WebGPU enabled), Safari 26, or Firefox 141 on Windows; the page must be served " +
    "over https.",
  adapter: "This device's GPU is too small for the image generator",
  "wont-fit": "This model does not fit in this device's GPU memory at these settings",
  download: "A download failed",
  "bad-model": "That model cannot be used",
  quota: "The browser's storage is full",
  "device-lost": "The GPU stopped responding; the generator restarted — try again",
  cancelled: "Stopped.",
  "bad-request": "A setting is not valid",
  internal: "The image generator failed",
  unavailable: "The image generator could not be loaded",
};

// ---- the shared engine -------------------------------------------------------------------------

let enginePromise = null;
let webgpuCheck = null;
let loaded = null; // { key, vae, taesd }: what the engine holds
const queue = []; // jobs waiting for the engine
let running = null; // the job on the engine now

function codedError(code, message) {
  return Object.assign(new Error(message), { code });
}

// webgpuMissing resolves true where the browser has no WebGPU or no
// adapter, so a widget can say so before anything is downloaded.
function webgpuMissing() {
  if (!webgpuCheck) {
    webgpuCheck = (async () => {
      if (!globalThis.navigator || !navigator.gpu || typeof navigator.gpu.requestAdapter !== "function") return true;
      try {
        return !(await navigator.gpu.requestAdapter());
      } catch {
        return true;
      }
    })();
  }
  return webgpuCheck;
}

// engine starts the one engine of the page; a failed start other than a
// missing WebGPU is tried again by the next run.
function engine() {
  if (!enginePromise) {
    enginePromise = (async () => {
      let api;
      try {
        api = await import(new URL("./tgate.js", import.meta.url).href);
      } catch (e) {
        throw codedError("unavailable", `tgate.js could not be loaded (${e.message})`);
      }
      return api.createEngine({ onProgress: onEngineEvent });
    })();
    enginePromise.catch((e) => {
      if (!e || e.code !== "no-webgpu") enginePromise = null;
    });
  }
  return enginePromise;
}

// onEngineEvent passes the engine's own status events (start, restart) to
// the widget whose run is on the engine; a call's events reach its widget
// through the call's onProgress.
function onEngineEvent(ev) {
  if (ev && ev.type === "status" && running) running.widget._onProgress(ev);
}

function enqueue(job) {
  queue.push(job);
  pump();
}

function dequeue(job) {
  const i = queue.indexOf(job);
  if (i >= 0) queue.splice(i, 1);
  return i >= 0;
}

function pump() {
  if (running || queue.length === 0) return;
  running = queue.shift();
  running.widget._runJob(running).finally(() => {
    running = null;
    pump();
  });
  for (const job of queue) job.widget._showWaiting(job);
}

// ensureModel loads what a run needs unless the engine holds it already.
// Loading the same model again for a decoder it lacks keeps the decoders
// it had, so widgets with different decoders do not take turns reloading.
async function ensureModel(eng, need, onProgress) {
  const key = `${need.model}\n${need.hub || ""}`;
  const same = loaded && loaded.key === key;
  if (same && (!need.vae || loaded.vae) && (!need.taesd || loaded.taesd === need.taesd)) return;
  const vae = need.vae || (same && loaded.vae);
  const taesd = need.taesd || (same && loaded.taesd) || undefined;
  const options = { onProgress, decoder: vae ? "vae" : taesd ? "taesd" : "none", ...need.estimate };
  if (need.hub) options.hub = need.hub;
  if (taesd) options.taesd = taesd;
  loaded = null;
  const info = await eng.load(need.model, options);
  loaded = { key, vae: !!info.vae, taesd: info.taesd ? taesd : null };
}

// ---- settings from attributes ------------------------------------------------------------------

// resolveURL makes a URL absolute against the page (hub, model folders).
function resolveURL(value) {
  return new URL(value, document.baseURI).href;
}

function readNumber(el, name, { integer = false, min = -Infinity } = {}) {
  const raw = el.getAttribute(name);
  if (raw === null || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
    throw codedError("bad-request", `${name}="${raw}" is not ${integer ? "a whole number" : "a number"}${min > -Infinity ? ` of at least ${min}` : ""}`);
  }
  return n;
}

function readChoice(el, name, choices) {
  const raw = el.getAttribute(name);
  if (raw === null || raw.trim() === "") return undefined;
  const v = raw.trim().toLowerCase();
  if (!choices.includes(v)) throw codedError("bad-request", `${name}="${raw}": valid values are ${choices.join(", ")}`);
  return v;
}

// settingsOf reads a widget's attributes (and its prompt box) into what a
// run needs: the model to load and the generate options.
function settingsOf(el, prompt) {
  let model = (el.getAttribute("model") || "").trim();
  if (!model) throw codedError("bad-request", 'no model: set the model attribute (a Hub repository such as "stabilityai/sd-turbo")');
  if (/^(\.{0,2}\/)/.test(model) && model.endsWith("/")) model = resolveURL(model);
  const hubAttr = (el.getAttribute("hub") || "").trim();
  const hub = hubAttr ? resolveURL(hubAttr).replace(/\/+$/, "") : undefined;
  const decoder = readChoice(el, "decoder", ["vae", "taesd", "none"]) || "vae";
  const taesdAttr = (el.getAttribute("taesd") || "").trim();
  const taesd = decoder === "taesd" ? (/^(\.{0,2}\/)/.test(taesdAttr) ? resolveURL(taesdAttr) : taesdAttr || DEFAULT_TAESD) : undefined;

  const gen = { prompt, negativePrompt: el.getAttribute("negative-prompt") || "", decoder };
  const steps = readNumber(el, "steps", { integer: true, min: 1 });
  if (steps !== undefined) gen.steps = steps;
  const guidance = readNumber(el, "guidance");
  if (guidance !== undefined) gen.guidance = guidance;
  const seed = readNumber(el, "seed", { integer: true, min: 0 });
  gen.seed = seed !== undefined ? seed : Math.floor(Math.random() * 2 ** 32);
  const width = readNumber(el, "width", { integer: true, min: 8 });
  const height = readNumber(el, "height", { integer: true, min: 8 });
  if (width !== undefined) gen.width = width;
  if (height !== undefined) gen.height = height;
  const scheduler = (el.getAttribute("scheduler") || "").trim();
  if (scheduler) gen.scheduler = scheduler;
  const mode = readChoice(el, "tgate", ["off", "v1", "v2"]) || "off";
  gen.tgate = { mode };
  const gateStep = readNumber(el, "gate-step", { integer: true, min: 1 });
  if (gateStep !== undefined) gen.tgate.gateStep = gateStep;

  const estimate = { tgate: gen.tgate };
  for (const k of ["width", "height", "steps"]) if (gen[k] !== undefined) estimate[k] = gen[k];
  return { need: { model, hub, decoder, vae: decoder === "vae", taesd, estimate }, gen };
}

// ---- the element -------------------------------------------------------------------------------

const CSS = `
:host { display: inline-block; box-sizing: border-box; width: 320px; max-width: 100%; vertical-align: top;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; text-align: start;
  --tgate-accent: #2563eb; --tgate-bg: #ffffff; --tgate-fg: #1f2328; --tgate-muted: #59636e; --tgate-border: #d1d9e0; }
:host([hidden]) { display: none; }
*, *::before, *::after { box-sizing: inherit; }
.card { display: flex; flex-direction: column; gap: 8px; padding: 10px; border: 1px solid var(--tgate-border);
  border-radius: 10px; background: var(--tgate-bg); color: var(--tgate-fg); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
form { display: flex; flex-direction: column; gap: 6px; margin: 0; }
form[hidden] { display: none; }
textarea { width: 100%; min-height: 2.8em; resize: vertical; font: inherit; color: inherit; background: transparent;
  padding: 6px 8px; border: 1px solid var(--tgate-border); border-radius: 6px; }
.row { display: flex; gap: 6px; align-items: center; }
button { font: inherit; padding: 5px 12px; border-radius: 6px; border: 1px solid var(--tgate-accent); cursor: pointer;
  background: var(--tgate-accent); color: #fff; }
button.secondary { background: transparent; color: var(--tgate-accent); }
button:disabled { opacity: .5; cursor: default; }
button[hidden] { display: none; }
textarea:focus-visible, button:focus-visible, a:focus-visible { outline: 2px solid var(--tgate-accent); outline-offset: 2px; }
.frame { position: relative; width: 100%; aspect-ratio: var(--ratio, 1); border-radius: 6px; overflow: hidden;
  background: repeating-conic-gradient(#0000000d 0 25%, #0000 0 50%) 0 0 / 16px 16px; }
.frame img { display: block; width: 100%; height: 100%; object-fit: contain; image-rendering: auto; }
.frame img:not([src]) { visibility: hidden; }
.card.unsupported .frame.empty { display: none; }
.message { margin: 0; padding: 8px 10px; border-radius: 6px; background: #fff4e5; color: #6b3a00; border: 1px solid #f5c27a; }
.message[hidden] { display: none; }
progress { width: 100%; height: 6px; accent-color: var(--tgate-accent); }
progress[hidden] { display: none; }
.status, .info { margin: 0; font-size: 12px; color: var(--tgate-muted); min-height: 1.4em; overflow-wrap: anywhere; }
.foot { display: flex; gap: 8px; align-items: baseline; justify-content: space-between; }
.foot a { color: var(--tgate-accent); font-size: 12px; white-space: nowrap; }
.foot a[hidden] { display: none; }
.status:empty, .foot:has(.info:empty):has(a[hidden]) { display: none; }
`;

let sheet = null;

function adoptStyles(root) {
  if (sheet === null) {
    try {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
    } catch {
      sheet = false;
    }
  }
  if (sheet && "adoptedStyleSheets" in root) {
    root.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = CSS;
    root.append(style);
  }
}

const TEMPLATE = `
<div class="card" part="card">
  <form part="form" novalidate>
    <label class="sr" for="prompt">Prompt</label>
    <textarea id="prompt" part="prompt" rows="2" spellcheck="true" placeholder="Describe an image…"></textarea>
    <div class="row">
      <button type="submit" part="button">Generate</button>
      <button type="button" class="secondary stop" part="stop" hidden>Stop</button>
    </div>
  </form>
  <p class="message" part="message" role="alert" hidden></p>
  <div class="frame empty" part="frame"><img part="image" alt=""></div>
  <progress part="progress" max="1" value="0" aria-label="Progress" hidden></progress>
  <p class="status" part="status" role="status" aria-live="polite"></p>
  <div class="foot">
    <span class="info" part="info"></span>
    <a part="download" download="tgate.png" hidden>Download PNG</a>
  </div>
</div>`;

function seconds(ms) {
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

function megabytes(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "image";
}

class TGateImage extends HTMLElement {
  static get observedAttributes() {
    return ATTRIBUTES;
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    adoptStyles(root);
    const t = document.createElement("template");
    t.innerHTML = TEMPLATE;
    root.append(t.content.cloneNode(true));
    const $ = (s) => root.querySelector(s);
    this._ui = {
      form: $("form"), prompt: $("textarea"), generate: $('button[type="submit"]'), stop: $(".stop"),
      card: $(".card"), message: $(".message"), frame: $(".frame"), img: $("img"), progress: $("progress"),
      status: $(".status"), info: $(".info"), download: $("a[download]"),
    };
    this._job = null; // this widget's queued or running run
    this._url = null; // object URL of the shown image
    this._updateScheduled = false;
    this._unsupported = false;
    this._promptEdited = false;
    this._ui.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.run();
    });
    this._ui.prompt.addEventListener("input", () => {
      this._promptEdited = true;
    });
    this._ui.prompt.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.run();
      }
    });
    this._ui.stop.addEventListener("click", () => this.stop());
  }

  connectedCallback() {
    this._scheduleUpdate(true);
    webgpuMissing().then((missing) => {
      if (missing) this._showUnsupported();
    });
  }

  disconnectedCallback() {
    if (this._job) this._cancelJob(this._job, "the widget was removed from the page");
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue) return;
    if (name === "prompt") this._promptEdited = false;
    this._scheduleUpdate(name !== "autorun" || newValue !== null);
  }

  // run queues a generation with the current settings; it resolves with
  // the result, or null when the run failed or was stopped (the widget
  // shows why and fires tgate-error).
  run() {
    if (this._job) this._cancelJob(this._job, "a newer run replaced it");
    const job = { widget: this, cancelled: false, reason: "", phase: "queued", done: null };
    job.done = new Promise((resolve) => {
      job.resolve = resolve;
    });
    this._job = job;
    this._ui.stop.hidden = false;
    this._ui.message.hidden = true;
    this._ui.progress.hidden = false;
    this._ui.progress.removeAttribute("value");
    this._setStatus(running ? "Waiting for another image to finish…" : "Starting…");
    enqueue(job);
    return job.done;
  }

  // stop cancels this widget's run (queued or running).
  stop() {
    if (this._job) this._cancelJob(this._job, "stopped");
  }

  _cancelJob(job, reason) {
    if (job.cancelled) return;
    job.cancelled = true;
    job.reason = reason;
    if (dequeue(job)) {
      this._finishError(job, codedError("cancelled", `the run was cancelled: ${reason}`));
    } else if (job.phase === "generate" && job.engine) {
      job.engine.cancel();
    }
  }

  _scheduleUpdate(mayRun) {
    this._mayRun = this._mayRun || mayRun;
    if (this._updateScheduled) return;
    this._updateScheduled = true;
    queueMicrotask(() => {
      this._updateScheduled = false;
      const mayRun = this._mayRun;
      this._mayRun = false;
      this._render();
      if (mayRun && this.isConnected && this._autorun()) this.run();
    });
  }

  _autorun() {
    return this.hasAttribute("autorun") && this.hasAttribute("prompt");
  }

  // _render brings the shown parts in line with the attributes.
  _render() {
    const ui = this._ui;
    ui.form.hidden = this._autorun();
    if (!this._promptEdited) ui.prompt.value = this.getAttribute("prompt") || "";
    ui.generate.disabled = this._unsupported;
    const w = Number(this.getAttribute("width")) || 0;
    const h = Number(this.getAttribute("height")) || 0;
    if (w > 0 && h > 0) ui.frame.style.setProperty("--ratio", `${w} / ${h}`);
    else if (!ui.img.hasAttribute("src")) ui.frame.style.removeProperty("--ratio");
  }

  _showUnsupported() {
    this._unsupported = true;
    this._ui.card.classList.add("unsupported");
    this._render();
    this._showMessage(MESSAGES["no-webgpu"]);
  }

  _showMessage(text) {
    this._ui.message.textContent = text;
    this._ui.message.hidden = false;
  }

  _setStatus(text) {
    this._ui.status.textContent = text;
  }

  _showWaiting(job) {
    if (job === this._job && job.phase === "queued") this._setStatus("Waiting for another image to finish…");
  }

  _fire(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  // _onProgress shows an engine event and passes it on as tgate-progress.
  _onProgress(ev) {
    const job = this._job;
    if (!job || job.cancelled) return;
    const ui = this._ui;
    switch (ev.type) {
      case "download":
        if (ev.total > 0) ui.progress.value = Math.min(1, ev.bytes / ev.total);
        this._setStatus(ev.fromCache
          ? `Loading ${ev.file} from the browser's cache`
          : `Downloading ${ev.file}: ${megabytes(ev.bytes)} of ${megabytes(ev.total)}`);
        break;
      case "phase":
        if (ev.start) {
          const what = {
            resolve: "Finding the model's files…", weights: "Loading the weights onto the GPU…",
            tokenize: "Reading the prompt…", "text-encoder": "Encoding the prompt…",
            denoise: "Denoising…", decode: "Decoding the image…",
          }[ev.phase];
          if (what) this._setStatus(what);
          if (ev.phase === "resolve" || ev.phase === "weights") ui.progress.removeAttribute("value");
        }
        break;
      case "step":
        ui.progress.value = ev.total ? ev.step / ev.total : 0;
        this._setStatus(`Step ${ev.step} of ${ev.total}${ev.plan && ev.plan.cross === "reuse" ? " (T-GATE: cross-attention reused)" : ""}`);
        break;
      case "status":
        if (ev.message) this._setStatus(ev.message.charAt(0).toUpperCase() + ev.message.slice(1));
        break;
    }
    this._fire("tgate-progress", ev);
  }

  // _runJob is the run's turn on the engine.
  async _runJob(job) {
    if (job.cancelled) return;
    const onProgress = (ev) => {
      if (this._job === job) this._onProgress(ev);
    };
    try {
      const { need, gen } = settingsOf(this, this._autorun() ? this.getAttribute("prompt") || "" : this._ui.prompt.value);
      if (await webgpuMissing()) throw codedError("no-webgpu", "this browser has no WebGPU");
      job.phase = "engine";
      this._setStatus("Starting the engine…");
      const eng = await engine();
      job.engine = eng;
      if (job.cancelled) throw codedError("cancelled", `the run was cancelled: ${job.reason}`);
      job.phase = "load";
      await ensureModel(eng, need, onProgress);
      if (job.cancelled) throw codedError("cancelled", `the run was cancelled: ${job.reason}`);
      job.phase = "generate";
      const result = await eng.generate({ ...gen, onProgress });
      if (job.cancelled) throw codedError("cancelled", `the run was cancelled: ${job.reason}`);
      this._finishDone(job, gen, result);
    } catch (e) {
      if (e && e.code === "device-lost") loaded = null;
      if (e && e.code === "no-webgpu") this._showUnsupported();
      this._finishError(job, e);
    }
  }

  _finishDone(job, gen, result) {
    const ui = this._ui;
    if (this._url) URL.revokeObjectURL(this._url);
    this._url = null;
    if (result.png) {
      this._url = URL.createObjectURL(result.png);
      ui.img.src = this._url;
      ui.frame.classList.remove("empty");
      ui.img.alt = gen.prompt;
      ui.frame.style.setProperty("--ratio", `${result.width} / ${result.height}`);
      ui.download.href = this._url;
      ui.download.download = `${slug(gen.prompt)}-${result.settings && result.settings.seed !== undefined ? result.settings.seed : gen.seed}.png`;
      ui.download.hidden = false;
    } else {
      ui.img.removeAttribute("src");
      ui.frame.classList.add("empty");
      ui.download.hidden = true;
    }
    const gate = result.gate && result.gate.mode && result.gate.mode !== "off" ? `T-GATE ${result.gate.mode}` : "T-GATE off";
    const steps = result.settings && result.settings.steps ? result.settings.steps : gen.steps;
    ui.info.textContent = `${result.width}×${result.height} · ${steps} steps · ${gate} · seed ${gen.seed} · ${seconds(result.timings ? result.timings.totalMs : 0)}`;
    ui.progress.value = 1;
    ui.progress.hidden = true;
    this._setStatus(result.png ? "Done." : "Done (no image: decoder is none).");
    this._end(job);
    this._fire("tgate-done", { png: result.png, result });
    job.resolve(result);
  }

  _finishError(job, e) {
    // (a DOMException's code is a number: not one of the engine's codes)
    const code = e && typeof e.code === "string" && e.code ? e.code : "internal";
    const message = (e && e.message) || String(e);
    const ui = this._ui;
    if (this._job === job) {
      ui.progress.hidden = true;
      if (code === "cancelled") {
        this._setStatus(MESSAGES.cancelled);
      } else {
        this._setStatus("");
        this._showMessage(code === "no-webgpu" ? MESSAGES["no-webgpu"] : `${MESSAGES[code] || MESSAGES.internal}: ${message.replace(/\.\s*$/, "")}.`);
      }
    }
    this._end(job);
    this._fire("tgate-error", { code, message });
    job.resolve(null);
  }

  _end(job) {
    if (this._job === job) {
      this._job = null;
      this._ui.stop.hidden = true;
    }
  }
}

if (!customElements.get(TAG)) customElements.define(TAG, TGateImage);

export { TGateImage };
