// The generation page: model choice, settings, progress, results, comparison, gallery, cache.
//
// Everything the engine does goes through tgate.js. It is imported when the page starts rather
// than statically, so that a browser or server without it still gets a page that says what is
// wrong (and can still read settings from PNGs).

import * as params from "./params.js";
import * as fmt from "./ui/format.js";
import { describeError } from "./ui/messages.js";
import { PRESETS, LOCAL_REPO, localPreset, fetchLocalModels, parseCustomModel } from "./ui/presets.js";
import { readForm, readGateFields, flagField, fillSampling, fillFromParameters, syncGateFields } from "./ui/form.js";
import { showResult, addToGallery, showCompare, showModelInfo, settingsOf } from "./ui/results.js";
import { renderCache, setCacheBusy } from "./ui/cache.js";

const $ = (id) => document.getElementById(id);
const url = new URL(location.href);
const HUB = url.searchParams.get("hub") || undefined; // every preset but the local ones

// ---- state ---------------------------------------------------------------------------------

let api = null; // the tgate.js module
let apiPromise = null;
let engine = null;
let enginePromise = null;
let model = null; // ModelInfo of the loaded model
let loaded = null; // { source, hub, vae, taesd } that model was loaded with
let lastResult = null;
let lastCompare = null;
let busy = false;
let cancelRequested = false;
let presets = []; // shown in #model, in order

window.tgateApp = {
  get engine() {
    return engine;
  },
  get model() {
    return model;
  },
  get lastResult() {
    return lastResult;
  },
  get lastCompare() {
    return lastCompare;
  },
};

function setState(s) {
  document.body.dataset.state = s;
}

function say(text, { error = false } = {}) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

function sayError(err) {
  const { text, error } = describeError(err);
  say(text, { error });
  if (error) console.error(err);
  return error;
}

function setBusy(b) {
  busy = b;
  $("load").disabled = b;
  $("generate").disabled = b;
  $("compare").disabled = b;
  $("cancel").disabled = !b;
  $("model").disabled = b;
  $("model-custom").disabled = b;
  setCacheBusy(b);
}

// ---- the engine ----------------------------------------------------------------------------

function onEngineEvent(ev) {
  if (ev && ev.type === "status" && ev.message) $("engine-info").textContent = ev.message;
}

function showAdapter(e) {
  const a = e && e.adapter;
  if (!a) return;
  const name = a.description || [a.vendor, a.architecture].filter(Boolean).join(" ") || "unknown adapter";
  const lim = a.limits || {};
  const parts = [`GPU: ${name}`];
  if (lim.maxBufferSize) parts.push(`largest buffer ${fmt.bytes(lim.maxBufferSize)}`);
  if (lim.maxStorageBufferBindingSize) parts.push(`largest binding ${fmt.bytes(lim.maxStorageBufferBindingSize)}`);
  if (Array.isArray(a.features)) parts.push(a.features.includes("shader-f16") ? "shader-f16" : "no shader-f16");
  $("engine-info").textContent = parts.join(" · ");
}

/** Imports tgate.js once (it needs no WebGPU); a failed import is retried by the next call. */
function loadApi() {
  if (api) return Promise.resolve(api);
  if (!apiPromise) {
    apiPromise = import("./tgate.js").then(
      (m) => (api = m),
      (err) => {
        apiPromise = null;
        throw Object.assign(new Error(`The engine could not be loaded from tgate.js (${err.message}). Reload the page; if it stays, the site is missing files.`), {
          code: "unavailable",
        });
      },
    );
  }
  return apiPromise;
}

/** Imports tgate.js and starts the engine once; a failed start is retried by the next call. */
function ensureEngine() {
  if (engine) return Promise.resolve(engine);
  if (!enginePromise) {
    enginePromise = (async () => {
      await loadApi();
      if (typeof api.createEngine !== "function") {
        throw Object.assign(new Error("tgate.js has no createEngine: the engine files on this site do not match the page."), { code: "unavailable" });
      }
      engine = await api.createEngine({ onProgress: onEngineEvent, ...(HUB ? { hub: HUB } : {}) });
      showAdapter(engine);
      return engine;
    })().finally(() => {
      enginePromise = null;
    });
  }
  return enginePromise;
}

function readParametersFn() {
  return api && typeof api.readParameters === "function" ? api.readParameters : params.readParameters;
}

// ---- models --------------------------------------------------------------------------------

function currentPreset() {
  return presets.find((p) => p.id === $("model").value) || null;
}

/** What #model asks to load: { req: { source, hub, label, vae, taesdSource } } or { error }. */
function describeRequest() {
  const p = currentPreset();
  const decoder = $("decoder").value;
  if (p) {
    const wantTaesd = !!p.taesd && ($("taesd").checked || decoder === "taesd");
    return {
      req: {
        source: p.source,
        hub: p.local ? location.origin : HUB,
        label: p.label,
        vae: decoder === "vae",
        taesdSource: wantTaesd ? p.taesd : undefined,
      },
    };
  }
  const c = parseCustomModel($("model-custom").value);
  if (c.error) return { error: c.error };
  return { req: { source: c.source, hub: HUB, label: c.source, vae: decoder === "vae", taesdSource: undefined } };
}

function needsLoad(req) {
  if (!model || !loaded) return true;
  if (loaded.source !== req.source || loaded.hub !== req.hub) return true;
  if (req.vae && !model.vae) return true;
  if (req.taesdSource && !model.taesd && !loaded.taesdSource) return true;
  return false;
}

function onModelSelected({ fill = true } = {}) {
  const p = currentPreset();
  $("model-custom-field").hidden = !!p;
  $("taesd-field").hidden = !(p && p.taesd);
  if (p && fill) fillSampling(p.settings);
  updateLoadedLine();
}

function updateLoadedLine() {
  const el = $("model-loaded");
  if (!model) {
    el.textContent = "No model loaded.";
    return;
  }
  const { req } = describeRequest();
  const differs = !req || needsLoad(req);
  el.textContent = `Loaded: ${model.source}${differs ? " (Generate loads the chosen model first)" : ""}`;
}

/** Offers what the loaded model has: TAESD, default size, the scheduler it brings. */
function applyModelInfo(info) {
  const taesdOpt = $("decoder").querySelector('option[value="taesd"]');
  taesdOpt.disabled = !info.taesd;
  taesdOpt.textContent = info.taesd ? "TAESD (fast, lower quality)" : "TAESD (fast, needs TAESD loaded)";
  if (!info.taesd && $("decoder").value === "taesd") $("decoder").value = info.vae ? "vae" : "none";
  if (info.defaultWidth) $("width").placeholder = `${info.defaultWidth} (model)`;
  if (info.defaultHeight) $("height").placeholder = `${info.defaultHeight} (model)`;
  $("scheduler").options[0].textContent = info.scheduler ? `Model's default (${info.scheduler})` : "Model's default";
}

function downloadProgress() {
  const files = new Map();
  const bar = $("progress-download");
  const line = $("download-text");
  $("download").hidden = false;
  bar.value = 0;
  bar.max = 1;
  line.textContent = "Reading the model's configuration…";
  return (ev) => {
    if (ev.type === "download") {
      files.set(ev.file, ev);
      if (ev.total) {
        bar.max = ev.total;
        bar.value = Math.min(ev.bytes || 0, ev.total);
      } else {
        bar.removeAttribute("value"); // indeterminate
      }
      const done = [...files.values()].filter((f) => f.done).length;
      const where = ev.fromCache ? " (from cache)" : "";
      const amount = ev.total ? `${fmt.bytes(ev.bytes)} of ${fmt.bytes(ev.total)}` : fmt.bytes(ev.bytes);
      line.textContent = `${ev.file}: ${amount}${where} · ${done} of ${files.size} files done`;
    } else if (ev.type === "phase" && ev.start) {
      const words = { resolve: "Reading the model's configuration…", weights: "Moving the weights to the GPU…" };
      if (words[ev.phase]) say(words[ev.phase]);
    }
  };
}

/** Loads the model the form names (a no-op when it is the loaded one and force is false). */
async function loadModel(req, { force = false } = {}) {
  await ensureEngine();
  if (!force && !needsLoad(req)) return model;
  setState("loading");
  say(`Loading ${req.label}…`);
  $("model-info").hidden = true;
  const onProgress = downloadProgress();
  let form = {};
  try {
    form = readForm();
  } catch {
    form = {};
  }
  const opts = { onProgress, decoder: req.vae ? "vae" : $("decoder").value };
  if (req.hub) opts.hub = req.hub;
  if (req.taesdSource) opts.taesd = req.taesdSource;
  for (const k of ["width", "height", "steps", "tgate"]) if (form[k] !== undefined) opts[k] = form[k];
  model = null;
  loaded = null;
  try {
    const info = await engine.load(req.source, opts);
    model = info;
    loaded = { source: req.source, hub: req.hub, taesdSource: req.taesdSource };
    showModelInfo(info);
    applyModelInfo(info);
    const files = info.files || [];
    const fromCache = files.filter((f) => f.cached).length;
    $("download-text").textContent = `${files.length} files ready (${fromCache} from the cache).`;
    $("progress-download").max = 1;
    $("progress-download").value = 1;
    return info;
  } finally {
    updateLoadedLine();
    refreshCache();
  }
}

// ---- generating ----------------------------------------------------------------------------

/** A step's plan { cfg, cross, self } in words: "cfg on / cross cache / self compute". */
function planText(p) {
  return `cfg ${p.cfg ? "on" : "off"} / cross ${p.cross} / self ${p.self}`;
}

function stepProgress(label) {
  const bar = $("progress-steps");
  const line = $("step-text");
  const preview = $("preview");
  bar.max = 1;
  bar.value = 0;
  line.textContent = `${label}: starting…`;
  const phaseWords = { tokenize: "reading the prompt", "text-encoder": "encoding the prompt", denoise: "denoising", decode: "decoding the image" };
  return (ev) => {
    if (ev.type === "phase" && ev.start && phaseWords[ev.phase]) {
      line.textContent = `${label}: ${phaseWords[ev.phase]}…`;
    } else if (ev.type === "step") {
      bar.max = ev.total || 1;
      bar.value = ev.step;
      const mem = ev.memory || {};
      const parts = [`${label}: step ${ev.step}/${ev.total}`];
      if (ev.timestep != null) parts.push(`timestep ${Math.round(ev.timestep * 100) / 100}`);
      if (ev.plan) parts.push(`plan: ${planText(ev.plan)}`);
      if (mem.liveBytes != null) parts.push(`GPU ${fmt.bytes(mem.liveBytes)} live, ${fmt.bytes(mem.peakBytes)} peak`);
      line.textContent = parts.join(" · ");
      if (ev.preview) {
        const old = preview.dataset.url;
        preview.dataset.url = URL.createObjectURL(ev.preview);
        preview.src = preview.dataset.url;
        preview.hidden = false;
        if (old) URL.revokeObjectURL(old);
      }
    }
  };
}

function throwIfCancelled() {
  if (cancelRequested) throw Object.assign(new Error("cancelled"), { code: "cancelled" });
}

async function generateOnce(opts, label) {
  throwIfCancelled();
  setState("generating");
  say(`${label}…`);
  const r = await engine.generate({ ...opts, onProgress: stepProgress(label) });
  lastResult = r;
  showResult(r, opts);
  addToGallery(r, opts, model && model.source, reuseSettings);
  $("step-text").textContent = `${label}: done in ${fmt.ms(r.timings && r.timings.totalMs)}.`;
  return r;
}

/** Runs an action that needs the engine: handles busy state, errors and the final state. */
async function withRun(action) {
  if (busy) return;
  setBusy(true);
  cancelRequested = false;
  try {
    await action();
    setState("ready");
  } catch (err) {
    if (err && err.code === "device-lost") {
      model = null;
      loaded = null;
      updateLoadedLine();
    }
    const isError = sayError(err);
    setState(isError ? "error" : "ready");
  } finally {
    setBusy(false);
  }
}

function formOrFlag() {
  try {
    return readForm();
  } catch (err) {
    if (flagField(err)) {
      say(err.message, { error: true });
      setState("error");
      return null;
    }
    throw err;
  }
}

function requestOrFlag() {
  const { req, error } = describeRequest();
  const custom = $("model-custom");
  if (req) {
    custom.removeAttribute("aria-invalid");
    return req;
  }
  say(error, { error: true });
  setState("error");
  custom.setAttribute("aria-invalid", "true");
  custom.focus();
  return null;
}

/** The state a run starts in: starting the engine, loading the model, or generating. */
function runState(req) {
  return !engine ? "starting" : needsLoad(req) ? "loading" : "generating";
}

function generate() {
  if (busy) return;
  const opts = formOrFlag();
  const req = opts && requestOrFlag();
  if (!req) return;
  return withRun(async () => {
    setState(runState(req));
    await loadModel(req);
    const r = await generateOnce(opts, "Generating");
    const warn = r.warnings && r.warnings.length ? ` (${r.warnings.length} warning${r.warnings.length > 1 ? "s" : ""}, see below)` : "";
    say(`Done in ${fmt.ms(r.timings && r.timings.totalMs)}${warn}.`);
  });
}

function compare() {
  if (busy) return;
  const opts = formOrFlag();
  const req = opts && requestOrFlag();
  if (!req) return;
  return withRun(async () => {
    setState(runState(req));
    await loadModel(req);
    // T-GATE as the form sets it; when the form has it off, v2 with the fields given (or the defaults).
    const on = opts.tgate.mode === "off" ? { ...readGateFields(), mode: "v2" } : opts.tgate;
    // T-GATE off with the on run's gate step: the engine then measures the off run's
    // peakAfterGateBytes after the same step (an unset gate step is the same default in both).
    const offOpts = { ...opts, tgate: on.gateStep != null ? { mode: "off", gateStep: on.gateStep } : { mode: "off" } };
    const onOpts = { ...opts, tgate: on };
    $("compare-view").hidden = true;
    const rOff = await generateOnce(offOpts, "1 of 2, T-GATE off");
    const rOn = await generateOnce(onOpts, `2 of 2, T-GATE ${fmt.tgate(on)}`);
    const { speedup, text } = showCompare(rOff, offOpts, rOn, onOpts);
    lastCompare = { off: rOff, on: rOn, speedup, text };
    say(text);
    $("compare-view").scrollIntoView({ block: "nearest" });
  });
}

function load() {
  if (busy) return;
  const req = requestOrFlag();
  if (!req) return;
  return withRun(async () => {
    setState(engine ? "loading" : "starting");
    const info = await loadModel(req, { force: !model || needsLoad(req) });
    say(`${info.source} is ready${info.estimate && info.estimate.peakBytes ? `; it needs about ${fmt.bytes(info.estimate.peakBytes)} of GPU memory` : ""}.`);
  });
}

function cancel() {
  if (!busy) return;
  cancelRequested = true;
  say(document.body.dataset.state === "loading" ? "Cancelling once the model has loaded…" : "Cancelling…");
  try {
    if (engine) engine.cancel();
  } catch (err) {
    console.error(err);
  }
}

// ---- PNG settings --------------------------------------------------------------------------

function selectModelByName(name) {
  if (!name) return false;
  // The engine names models "owner/name@rev"; a preset at main is the same.
  const lower = name.toLowerCase().replace(/@main$/, "");
  const p =
    presets.find((x) => x.source.toLowerCase() === lower) ||
    presets.find((x) => x.id.toLowerCase() === lower) ||
    presets.find((x) => x.label.toLowerCase() === lower);
  if (p) {
    $("model").value = p.id;
    onModelSelected({ fill: false });
    return true;
  }
  if (!parseCustomModel(name).error) {
    $("model").value = "custom";
    $("model-custom").value = name;
    onModelSelected({ fill: false });
    return true;
  }
  return false;
}

function applyParameters(p, from) {
  fillFromParameters(p);
  const picked = busy ? false : selectModelByName(p.model);
  const modelNote = p.model ? (picked ? ` Model: ${p.model}.` : ` The model "${p.model}" is not one this page knows; the model choice is unchanged.`) : "";
  say(`Settings read from ${from}.${modelNote}`);
  if (document.body.dataset.state === "error") setState(engine ? "ready" : "error");
}

async function readPng(file) {
  const name = file.name || "the image";
  try {
    const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
    if (!params.isPng(head)) {
      say(`${name} is not a PNG; only PNG images carry their settings.`, { error: true });
      return;
    }
    const p = await readParametersFn()(file);
    if (!p) {
      say(`${name} carries no generation settings (it has no "parameters" text chunk).`, { error: true });
      return;
    }
    applyParameters(p, name);
  } catch (err) {
    say(`Could not read ${name}: ${err.message}`, { error: true });
  }
}

async function reuseSettings(r) {
  const p = r.png ? await readParametersFn()(r.png) : null;
  if (p) applyParameters(p, "the gallery image");
  else {
    fillFromParameters(settingsOf(r));
    say("Settings taken from the gallery image.");
  }
  $("prompt").focus();
}

function setUpDrop() {
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  document.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    depth++;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (e) => {
    if (!hasFiles(e)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging");
    const file = e.dataTransfer.files[0];
    if (file) readPng(file);
  });
  $("png-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) readPng(file);
    e.target.value = "";
  });
}

// ---- cache ---------------------------------------------------------------------------------

/** Lists the stored models with tgate.js's listCachedModels (no engine or WebGPU needed). */
async function refreshCache() {
  try {
    const m = await loadApi().catch(() => null);
    await renderCache(m && m.listCachedModels, { onDelete: deleteCached, busy });
    setCacheBusy(busy);
  } catch (err) {
    $("cache-total").textContent = `Could not list the stored models: ${err.message}`;
  }
}

async function deleteCached(name) {
  if (busy) return;
  try {
    const m = await loadApi();
    await m.deleteCachedModel(name);
    say(`Deleted ${name} from this browser's storage.`);
  } catch (err) {
    sayError(err);
  }
  await refreshCache();
}

// ---- start ---------------------------------------------------------------------------------

function fillModelSelect(localRepos) {
  presets = [...localRepos.map(localPreset), ...PRESETS];
  const sel = $("model");
  sel.replaceChildren(
    ...presets.map((p) => new Option(p.label, p.id)),
    new Option("Other…", "custom"),
  );
  const wanted = url.searchParams.get("model");
  const tiny = presets.find((p) => p.local && p.source === LOCAL_REPO);
  if (!(wanted && selectModelByName(wanted))) sel.value = (tiny || presets[0]).id;
  onModelSelected();
}

function wireUp() {
  $("model").addEventListener("change", () => onModelSelected());
  $("model-custom").addEventListener("input", updateLoadedLine);
  $("decoder").addEventListener("change", updateLoadedLine);
  $("taesd").addEventListener("change", updateLoadedLine);
  $("tgate-mode").addEventListener("change", syncGateFields);
  $("load").addEventListener("click", load);
  $("generate").addEventListener("click", generate);
  $("compare").addEventListener("click", compare);
  $("cancel").addEventListener("click", cancel);
  $("cache-refresh").addEventListener("click", refreshCache);
  $("settings").addEventListener("submit", (e) => e.preventDefault());
  $("dice").addEventListener("click", () => {
    $("seed").value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
    $("seed").removeAttribute("aria-invalid");
  });
  for (const id of ["prompt", "negative"]) {
    $(id).addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        generate();
      }
    });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && busy) cancel();
  });
  setUpDrop();
}

async function start() {
  wireUp();
  setBusy(false);
  const local = await fetchLocalModels();
  fillModelSelect(local);
  syncGateFields();
  setState("starting");
  say("Starting the engine…");
  try {
    await ensureEngine();
  } catch (err) {
    sayError(err);
    setState("error");
    refreshCache();
    return;
  }
  await refreshCache();
  const p = currentPreset();
  if (p && p.local && p.source === LOCAL_REPO) {
    await withRun(async () => {
      const info = await loadModel(describeRequest().req);
      say(`Ready: ${info.source} is loaded. Type a prompt and press Generate.`);
    });
  } else {
    setState("ready");
    say("Ready. Choose a model, type a prompt and press Generate (the model downloads on first use).");
  }
}

start().catch((err) => {
  sayError(err);
  setState("error");
});
