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

/** The T-GATE fields as an object, without the mode (empty fields left out). */
export function readGateFields() {
  const t = {};
  for (const [id, key, min, label] of GATE_FIELDS) put(t, key, intField(id, label, { min, max: 1000 }));
  return t;
}

/**
 * The generate options the form describes (onProgress aside). Throws a FieldError (with .field,
 * the id of the offending input) when a field is not valid.
 */
export function readForm() {
  for (const el of document.querySelectorAll("#settings [aria-invalid]")) el.removeAttribute("aria-invalid");
  const o = { prompt: $("prompt").value, negativePrompt: $("negative").value };
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

/** Enables the T-GATE number fields only when T-GATE is on. */
export function syncGateFields() {
  const off = $("tgate-mode").value === "off";
  for (const [id] of GATE_FIELDS) $(id).disabled = off;
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
  for (const [id, key] of GATE_FIELDS) setValue(id, t[key]);
  syncGateFields();
}

/** Fills the whole form from options read from a PNG. */
export function fillFromParameters(p) {
  setValue("prompt", p.prompt ?? "");
  setValue("negative", p.negativePrompt ?? "");
  setValue("seed", p.seed);
  fillSampling(p);
  if (p.decoder) setSelect("decoder", p.decoder);
}
