// The generation page: model choice, settings, the init image and mask, LoRAs, progress, results,
// comparison, gallery, cache.
//
// Everything the engine does goes through tgate.js. It is imported when the page starts rather
// than statically, so that a browser or server without it still gets a page that says what is
// wrong (and can still read settings from PNGs).

import * as params from "./params.js";
import * as fmt from "./ui/format.js";
import { describeError } from "./ui/messages.js";
import { PRESETS, LOCAL_REPO, DEFAULT_CHECKPOINT_CONFIG, localPreset, fetchLocalModels, parseCustomModel } from "./ui/presets.js";
import { readForm, readGateFields, readDeepCache, flagField, fillSampling, fillFromParameters, syncGateFields, showFieldsFor } from "./ui/form.js";
import { showResult, addToGallery, showCompareRuns, showModelInfo, settingsOf } from "./ui/results.js";
import { renderCache, setCacheBusy } from "./ui/cache.js";
import { setUpImagePanel, setInitImage, readImageOptions, initImageInfo, setStrength, setStrengthDefaults, setImageNote } from "./ui/image.js";
import { setUpLoras, readLoras, fillLoras } from "./ui/lora.js";
import { compareRuns, COMPARE_HEADINGS } from "./ui/compare.js";
import { downloadProgress, stepProgress } from "./ui/progress.js";
import { fileURL } from "./options.js";

const $ = (id) => document.getElementById(id);
const url = new URL(location.href);
const HUB = url.searchParams.get("hub") || undefined; // every preset but the local ones

// ---- state ---------------------------------------------------------------------------------

let api = null; // the tgate.js module
let apiPromise = null;
let engine = null;
let enginePromise = null;
let model = null; // ModelInfo of the loaded model
let loaded = null; // { source, hub, taesdSource, config } that model was loaded with
let checkpointFile = null; // { file, url }: the single-file checkpoint picked from disk
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
  /** The init image the Image panel holds: { name, width, height, masked } or null. */
  get initImage() {
    return initImageInfo();
  },
  /** The generate options the form, the Image panel and the LoRA list describe now. */
  buildOptions() {
    return buildOptions();
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
  $("compare-method").disabled = b;
  for (const id of ["checkpoint-file", "checkpoint-url", "checkpoint-config"]) $(id).disabled = b;
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

/** The single-file checkpoint the fields name: { source, label, config } or { error }. */
function checkpointRequest() {
  const config = $("checkpoint-config").value.trim() || DEFAULT_CHECKPOINT_CONFIG;
  const typed = $("checkpoint-url").value.trim();
  if (typed) {
    try {
      const u = new URL(typed, location.href);
      if ((u.protocol === "https:" || u.protocol === "http:") && /\.safetensors$/i.test(u.pathname)) {
        return { source: u.href, label: u.pathname.split("/").pop(), config };
      }
    } catch {
      // falls through to the message below
    }
    return { error: `"${typed}" is not the URL of a .safetensors checkpoint.`, field: "checkpoint-url" };
  }
  if (checkpointFile) return { source: checkpointFile.url, label: checkpointFile.file.name, config };
  return { error: "Pick a .safetensors checkpoint file, or type its URL.", field: "checkpoint-file" };
}

/** What #model asks to load: { req: { source, hub, label, vae, taesdSource, config } } or { error, field }. */
function describeRequest() {
  const p = currentPreset();
  const decoder = $("decoder").value;
  if ($("model").value === "checkpoint") {
    const c = checkpointRequest();
    if (c.error) return c;
    return { req: { source: c.source, hub: HUB, label: c.label, vae: decoder === "vae", taesdSource: undefined, config: c.config } };
  }
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
  if (c.error) return { error: c.error, field: "model-custom" };
  return { req: { source: c.source, hub: HUB, label: c.source, vae: decoder === "vae", taesdSource: undefined } };
}

function needsLoad(req) {
  if (!model || !loaded) return true;
  if (loaded.source !== req.source || loaded.hub !== req.hub || loaded.config !== req.config) return true;
  if (req.vae && !model.vae) return true;
  if (req.taesdSource && !model.taesd && !loaded.taesdSource) return true;
  return false;
}

/**
 * The family of the model the next run uses ("sd", "lcm", "sdxl", "inpaint", "pixart"): the loaded
 * model's kind when it is the one chosen, else the chosen preset's, else the loaded model's.
 */
function modelKind() {
  const { req } = describeRequest();
  if (model && model.kind && req && !needsLoad(req)) return model.kind;
  const p = currentPreset();
  if (p && p.kind) return p.kind;
  return (model && model.kind) || "sd";
}

/** Shows the fields that apply to the model the next run uses, and says what does nothing. */
function applyKind() {
  const kind = modelKind();
  showFieldsFor(kind);
  document.body.dataset.kind = kind;
  setStrengthDefaults(kind);
  $("lora-note").hidden = kind !== "pixart";
  if (kind === "pixart") setImageNote("PixArt makes images from text alone here: the init image and the mask are not used.");
  else if (kind === "inpaint") setImageNote("This is an inpainting model: give it an image and paint a mask.");
  else setImageNote("");
}

function onModelSelected({ fill = true } = {}) {
  const p = currentPreset();
  const checkpoint = $("model").value === "checkpoint";
  $("model-custom-field").hidden = !!p || checkpoint;
  $("checkpoint-fields").hidden = !checkpoint;
  $("taesd-field").hidden = !(p && p.taesd);
  $("model-note").textContent = (p && p.note) || "";
  $("model-note").hidden = !(p && p.note);
  if (p && fill) fillSampling(p.settings);
  updateLoadedLine();
  applyKind();
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
  applyKind();
}

/** Loads the model the form names (a no-op when it is the loaded one and force is false). */
async function loadModel(req, { force = false } = {}) {
  await ensureEngine();
  if (!force && !needsLoad(req)) return model;
  setState("loading");
  say(`Loading ${req.label}…`);
  $("model-info").hidden = true;
  const onProgress = downloadProgress(say);
  let form = {};
  try {
    form = readForm();
  } catch {
    form = {};
  }
  const opts = { onProgress, decoder: req.vae ? "vae" : $("decoder").value };
  if (req.hub) opts.hub = req.hub;
  if (req.taesdSource) opts.taesd = req.taesdSource;
  if (req.config) opts.config = req.config;
  for (const k of ["width", "height", "steps", "tgate"]) if (form[k] !== undefined) opts[k] = form[k];
  if (opts.tgate && opts.tgate.gateStep === "auto") {
    // the estimate needs a step: an auto gate is estimated at the default one
    const { gateStep: _auto, autoThreshold: _threshold, ...fixed } = opts.tgate;
    opts.tgate = fixed;
  }
  model = null;
  loaded = null;
  try {
    const info = await engine.load(req.source, opts);
    model = info;
    loaded = { source: req.source, hub: req.hub, taesdSource: req.taesdSource, config: req.config };
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
  addToGallery(r, opts, model && model.source, reuseSettings, useAsInitImage);
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

/**
 * The generate options of the whole page: the form (for the model's kind), and for UNet models
 * the init image, its strength and mask, and the LoRAs (PixArt takes none of them here).
 */
function buildOptions() {
  const kind = modelKind();
  const o = readForm({ kind });
  if (kind === "pixart") return o;
  Object.assign(o, readImageOptions());
  const loras = readLoras();
  if (loras) o.loras = loras;
  return o;
}

function formOrFlag() {
  try {
    return buildOptions();
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
  if (req) {
    for (const id of ["model-custom", "checkpoint-file", "checkpoint-url"]) $(id).removeAttribute("aria-invalid");
    return req;
  }
  const { field } = describeRequest();
  const el = $(field || "model-custom");
  say(error, { error: true });
  setState("error");
  el.setAttribute("aria-invalid", "true");
  el.focus();
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
  const choice = $("compare-method").value;
  return withRun(async () => {
    setState(runState(req));
    await loadModel(req);
    const runs = compareRuns(opts, choice, { gateFields: readGateFields(), deepcache: readDeepCache(), kind: modelKind() });
    $("compare-view").hidden = true;
    const done = [];
    for (const [i, run] of runs.entries()) {
      const r = await generateOnce(run.opts, `${i + 1} of ${runs.length}, ${run.label}`);
      done.push({ r, asked: run.opts, label: run.label, method: run.method });
    }
    const { speedup, text } = showCompareRuns(done, { heading: COMPARE_HEADINGS[choice] || COMPARE_HEADINGS.tgate });
    lastCompare = { runs: done.map((d) => d.r), off: done[0].r, on: done[done.length - 1].r, speedup, text };
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
  if (p.strength !== undefined) setStrength(p.strength);
  fillLoras(p.loras || []);
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

/** Sends a gallery image back to the Image panel as the next init image. */
async function useAsInitImage(r) {
  try {
    await setInitImage(r.png, `the gallery image (seed ${settingsOf(r).seed ?? 0})`);
    say("The gallery image is the init image now: set the strength (and a mask) and generate.");
    $("image-panel").scrollIntoView({ block: "nearest" });
  } catch (err) {
    say(err.message, { error: true });
  }
}

/** Keeps the width and height fields on the init image's size (rounded down to multiples of 8). */
function onInitImage(info) {
  if (info) {
    $("width").value = String(info.size.width);
    $("height").value = String(info.size.height);
    const note = info.size.width !== info.width || info.size.height !== info.height ? ` (generated at ${info.size.width}×${info.size.height})` : "";
    say(`Init image set: ${info.width}×${info.height}${note}.`);
  }
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
    if (e.target instanceof Element && e.target.closest("#init-drop")) return; // the Image panel took it
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
    new Option("Single-file checkpoint…", "checkpoint"),
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
  $("gate-auto").addEventListener("change", syncGateFields);
  $("model-custom").addEventListener("input", applyKind);
  $("checkpoint-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (checkpointFile) URL.revokeObjectURL(checkpointFile.url.replace(/#.*$/, ""));
    checkpointFile = file ? { file, url: fileURL(file) } : null;
    if (file) $("checkpoint-url").value = "";
    updateLoadedLine();
  });
  for (const id of ["checkpoint-url", "checkpoint-config"]) $(id).addEventListener("input", updateLoadedLine);
  setUpImagePanel({ onChange: onInitImage, onError: (m) => say(m, { error: true }) });
  setUpLoras({ onError: (m) => say(m, { error: true }) });
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
