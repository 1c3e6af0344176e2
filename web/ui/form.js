// The settings form: read it into generate options, fill it from a preset or a PNG.

const $ = (id) => document.getElementById(id);

const GATE_FIELDS = [
  ["gate-step", "gateStep", 1, "Gate step"],
  ["sp-interval", "spInterval", 1, "SP interval"],
  ["fi-interval", "fiInterval", 1, "FI interval"],
  ["warm-up", "warmUp", 0, "Warm-up"],
];

/** The sampling fields a preset or a PNG sets: field id → option name. */
const SAMPLING_FIELDS = [
  ["steps", "steps"],
  ["guidance", "guidance"],
  ["width", "width"],
  ["height", "height"],
  ["scheduler", "scheduler"],
  ["spacing", "timestepSpacing"],
  ["guidance-rescale", "guidanceRescale"],
];

/** The SD-XL micro-conditioning pairs: option name → the two field ids and their words. */
const PAIR_FIELDS = [
  ["originalSize", "original-h", "original-w", "Original size", 1],
  ["cropsCoordsTopLeft", "crop-top", "crop-left", "Crop top-left", 0],
  ["targetSize", "target-h", "target-w", "Target size", 1],
  ["negativeOriginalSize", "neg-original-h", "neg-original-w", "Negative original size", 1],
  ["negativeCropsCoordsTopLeft", "neg-crop-top", "neg-crop-left", "Negative crop top-left", 0],
  ["negativeTargetSize", "neg-target-h", "neg-target-w", "Negative target size", 1],
];

class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function text(id) {
  return $(id).value.trim();
}

function intField(id, label, { min = 0, max = Number.MAX_SAFE_INTEGER, multiple = 1 } = {}) {
  const v = text(id);
  if (v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new FieldError(id, `${label} must be a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : " up"}.`);
  }
  if (n % multiple !== 0) throw new FieldError(id, `${label} must be a multiple of ${multiple} (for example ${Math.max(multiple, Math.round(n / multiple) * multiple)}).`);
  return n;
}

function numField(id, label, { min = -Infinity, max = Infinity } = {}) {
  const v = text(id);
  if (v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new FieldError(id, `${label} must be a number${Number.isFinite(min) ? ` from ${min}` : ""}${Number.isFinite(max) ? ` to ${max}` : ""}.`);
  }
  return n;
}

function put(obj, key, value) {
  if (value !== undefined && value !== "") obj[key] = value;
}

/**
 * The T-GATE fields as an object, without the mode (empty fields left out); with "auto" ticked the
 * gate step is "auto" and the threshold field gives autoThreshold.
 */
export function readGateFields() {
  const t = {};
  const auto = $("gate-auto").checked;
  for (const [id, key, min, label] of GATE_FIELDS) {
    if (auto && key === "gateStep") continue;
    put(t, key, intField(id, label, { min, max: 1000 }));
  }
  if (auto) {
    t.gateStep = "auto";
    put(t, "autoThreshold", numField("auto-threshold", "Auto gate threshold", { min: Number.MIN_VALUE, max: 10 }));
  }
  return t;
}

/** A [a, b] pair from two number fields; both empty: undefined; one empty: an error. */
function pairField(idA, idB, label, min) {
  const a = intField(idA, label, { min, max: 16384 });
  const b = intField(idB, label, { min, max: 16384 });
  if (a === undefined && b === undefined) return undefined;
  if (a === undefined) throw new FieldError(idA, `${label}: give both numbers, or neither.`);
  if (b === undefined) throw new FieldError(idB, `${label}: give both numbers, or neither.`);
  return [a, b];
}

/** DeepCache from its fields: { interval, branch } or undefined when the interval is empty. */
export function readDeepCache() {
  const interval = intField("deepcache-interval", "DeepCache interval", { min: 1, max: 1000 });
  if (interval === undefined) return undefined;
  return { interval, branch: intField("deepcache-branch", "DeepCache branch", { min: 0, max: 100 }) ?? 0 };
}

/** The options of the model families' own fields (SD-XL, PixArt) and of the speed-ups. */
function readFamilyFields(o, kind) {
  if (kind === "sdxl") {
    put(o, "prompt2", $("prompt2").value);
    put(o, "negativePrompt2", $("negative2").value);
    for (const [key, a, b, label, min] of PAIR_FIELDS) put(o, key, pairField(a, b, label, min));
  }
  if (kind === "pixart") {
    put(o, "maxSequenceLength", intField("max-seq-len", "Max sequence length", { min: 1, max: 4096 }));
    o.resolutionBinning = $("resolution-binning").checked;
    o.cleanCaption = $("clean-caption").checked;
  } else {
    put(o, "deepcache", readDeepCache());
  }
  // Adaptive Guidance applies to SD 1.x/2.x without T-GATE (both end guidance early).
  const ag = numField("adaptive-guidance", "Adaptive guidance", { min: 0, max: 1 });
  if (ag && (kind === "sd" || kind === "inpaint") && (!o.tgate || o.tgate.mode === "off")) o.adaptiveGuidance = ag;
}

/**
 * The generate options the form describes (onProgress, the image and the LoRAs aside) for a model
 * of the given kind ("sd", "lcm", "sdxl", "inpaint", "pixart"): the SD-XL fields only for sdxl,
 * the PixArt ones only for pixart, DeepCache for every UNet. Throws a FieldError (with .field, the
 * id of the offending input) when a field is not valid.
 */
export function readForm({ kind = "sd" } = {}) {
  for (const el of document.querySelectorAll("#settings [aria-invalid]")) el.removeAttribute("aria-invalid");
  // An empty negative prompt is left out: SD-XL then uses zeros (diffusers' negative_prompt=None).
  const o = { prompt: $("prompt").value };
  put(o, "negativePrompt", $("negative").value);
  put(o, "steps", intField("steps", "Steps", { min: 1, max: 1000 }));
  put(o, "guidance", numField("guidance", "Guidance", { min: 0, max: 100 }));
  put(o, "seed", intField("seed", "Seed", { min: 0 }));
  put(o, "width", intField("width", "Width", { min: 8, max: 4096, multiple: 8 }));
  put(o, "height", intField("height", "Height", { min: 8, max: 4096, multiple: 8 }));
  put(o, "scheduler", $("scheduler").value);
  put(o, "timestepSpacing", $("spacing").value);
  put(o, "guidanceRescale", numField("guidance-rescale", "Guidance rescale", { min: 0, max: 1 }));
  o.decoder = $("decoder").value;
  o.previewEvery = intField("preview-every", "Preview every", { min: 0, max: 1000 }) ?? 0;
  const mode = $("tgate-mode").value;
  const gate = readGateFields();
  o.tgate = mode === "off" ? { mode } : { mode, ...gate };
  readFamilyFields(o, kind);
  o.returnLatents = true;
  return o;
}

/** Marks a field invalid and moves the focus to it. */
export function flagField(err) {
  if (!(err instanceof FieldError)) return false;
  const el = $(err.field);
  el.setAttribute("aria-invalid", "true");
  el.focus();
  return true;
}

function setValue(id, v) {
  $(id).value = v === undefined || v === null ? "" : String(v);
}

function setSelect(id, v) {
  const el = $(id);
  const want = v === undefined || v === null ? "" : String(v);
  el.value = [...el.options].some((o) => o.value === want && !o.disabled) ? want : el.options[0].value;
}

/** Enables the T-GATE number fields only when T-GATE is on (the gate step not when "auto"). */
export function syncGateFields() {
  const off = $("tgate-mode").value === "off";
  const auto = $("gate-auto").checked;
  for (const [id] of GATE_FIELDS) $(id).disabled = off || (auto && id === "gate-step");
  $("gate-auto").disabled = off;
  $("auto-threshold").disabled = off || !auto;
  updateAdaptiveNote();
}

/**
 * Shows the fields that apply to a model kind and says which do nothing: the SD-XL fields for
 * sdxl, the PixArt ones for pixart, DeepCache for UNet models only.
 */
export function showFieldsFor(kind) {
  $("sdxl-fields").hidden = kind !== "sdxl";
  $("pixart-fields").hidden = kind !== "pixart";
  const unet = kind !== "pixart";
  $("deepcache-fields").hidden = !unet;
  $("deepcache-none").hidden = unet;
  shownKind = kind;
  updateAdaptiveNote();
}

let shownKind = "sd";

/** Says when the Adaptive Guidance field does nothing (readFamilyFields then leaves it out). */
function updateAdaptiveNote() {
  const applies = (shownKind === "sd" || shownKind === "inpaint") && $("tgate-mode").value === "off";
  $("ag-none").hidden = applies;
}

/**
 * Fills the sampling fields (steps, guidance, size, scheduler, spacing, rescale, T-GATE) from an
 * options object; those it does not name are cleared to the defaults.
 */
export function fillSampling(s = {}) {
  for (const [id, key] of SAMPLING_FIELDS) {
    if ($(id).tagName === "SELECT") setSelect(id, s[key]);
    else setValue(id, s[key]);
  }
  const t = s.tgate || {};
  setSelect("tgate-mode", t.mode || "off");
  const auto = t.gateStep === "auto";
  $("gate-auto").checked = auto;
  for (const [id, key] of GATE_FIELDS) setValue(id, auto && key === "gateStep" ? undefined : t[key]);
  setValue("auto-threshold", t.autoThreshold);
  const d = s.deepcache || {};
  setValue("deepcache-interval", d.interval);
  setValue("deepcache-branch", d.interval !== undefined ? d.branch : undefined);
  setValue("adaptive-guidance", s.adaptiveGuidance);
  syncGateFields();
}

/** Fills the whole form from options read from a PNG (the image and LoRAs are the page's). */
export function fillFromParameters(p) {
  setValue("prompt", p.prompt ?? "");
  setValue("negative", p.negativePrompt ?? "");
  setValue("seed", p.seed);
  fillSampling(p);
  if (p.decoder) setSelect("decoder", p.decoder);
  setValue("prompt2", p.prompt2 ?? "");
  setValue("negative2", p.negativePrompt2 ?? "");
  for (const [key, a, b] of PAIR_FIELDS) {
    setValue(a, p[key] && p[key][0]);
    setValue(b, p[key] && p[key][1]);
  }
  setValue("max-seq-len", p.maxSequenceLength);
  $("resolution-binning").checked = p.resolutionBinning !== false;
  $("clean-caption").checked = p.cleanCaption === true;
}
