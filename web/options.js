// options.js: checks and shapes the options of engine.generate and engine.load (docs/js-api.md)
// before they reach the Worker. Pure functions with no DOM or WebGPU, so node can test them
// (web/options.test.mjs). Every problem is a BadRequest, which tgate.js turns into an
// EngineError "bad-request" with the same message.

/** BadRequest is a problem with the caller's options; code is always "bad-request". */
export class BadRequest extends Error {
  constructor(message) {
    super(message);
    this.name = "BadRequest";
    this.code = "bad-request";
  }
}

/** The image kinds initImage and mask accept, in people's words (for error messages). */
export const IMAGE_KINDS = "a Blob or File, ImageBitmap, ImageData, HTMLCanvasElement, OffscreenCanvas, HTMLImageElement or { width, height, data: Uint8ClampedArray }";

const SIZE_PAIRS = ["originalSize", "targetSize", "negativeOriginalSize", "negativeTargetSize"];
const CROP_PAIRS = ["cropsCoordsTopLeft", "negativeCropsCoordsTopLeft"];

/** A short description of a value's type for messages: "a string", "an Array", "null". */
export function describe(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an Array";
  if (typeof v === "object") {
    const name = v.constructor && v.constructor.name;
    return name && name !== "Object" ? `a ${name}` : "an object";
  }
  return `a ${typeof v}`;
}

/** True for a plain RGBA picture { width, height, data: Uint8ClampedArray | Uint8Array } of that many bytes. */
export function isRGBA(v) {
  return (
    !!v &&
    typeof v === "object" &&
    Number.isInteger(v.width) &&
    Number.isInteger(v.height) &&
    v.width > 0 &&
    v.height > 0 &&
    (v.data instanceof Uint8ClampedArray || v.data instanceof Uint8Array) &&
    v.data.length === v.width * v.height * 4
  );
}

function isInstance(v, name) {
  const C = globalThis[name];
  return typeof C === "function" && v instanceof C;
}

/** True when v is one of the image kinds initImage and mask accept. */
export function isImageSource(v) {
  if (!v || typeof v !== "object") return false;
  if (isRGBA(v)) return true;
  return ["Blob", "ImageBitmap", "ImageData", "HTMLCanvasElement", "OffscreenCanvas", "HTMLImageElement"].some((n) => isInstance(v, n));
}

function finite(v) {
  return typeof v === "number" && Number.isFinite(v);
}

function checkString(o, key) {
  if (o[key] !== undefined && typeof o[key] !== "string") throw new BadRequest(`${key} must be a string (got ${describe(o[key])})`);
}

function checkBool(o, key) {
  if (o[key] !== undefined && typeof o[key] !== "boolean") throw new BadRequest(`${key} must be true or false (got ${describe(o[key])})`);
}

function checkPair(o, key, min, words) {
  const v = o[key];
  if (v === undefined || v === null) return;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && x >= min)) {
    throw new BadRequest(`${key} must be [${words}], two whole numbers from ${min} up (got ${JSON.stringify(v)})`);
  }
}

/** Checks and copies the loras option: [{ url, scale }] with scale defaulting to 1. */
export function shapeLoras(loras) {
  if (loras === undefined || loras === null) return undefined;
  if (!Array.isArray(loras)) throw new BadRequest(`loras must be an Array of { url, scale } (got ${describe(loras)})`);
  return loras.map((l, i) => {
    if (!l || typeof l !== "object") throw new BadRequest(`loras[${i}] must be { url, scale } (got ${describe(l)})`);
    if (typeof l.url !== "string" || l.url.trim() === "") {
      throw new BadRequest(`loras[${i}].url must be an https URL, a Hub path owner/name/file.safetensors or a blob: URL (got ${describe(l.url)})`);
    }
    const scale = l.scale === undefined ? 1 : l.scale;
    if (!finite(scale)) throw new BadRequest(`loras[${i}].scale must be a finite number (got ${describe(l.scale)})`);
    return { url: l.url.trim(), scale };
  });
}

function checkTGate(t) {
  if (t === undefined || t === null) return;
  if (typeof t !== "object" || Array.isArray(t)) throw new BadRequest(`tgate must be an object { mode, gateStep, ... } (got ${describe(t)})`);
  const g = t.gateStep;
  if (g !== undefined && g !== null && g !== "auto" && !(Number.isInteger(g) && g >= 1)) {
    throw new BadRequest(`tgate.gateStep must be a whole number from 1 up or "auto" (got ${JSON.stringify(g)})`);
  }
  if (t.autoThreshold !== undefined && t.autoThreshold !== null) {
    if (!finite(t.autoThreshold) || t.autoThreshold <= 0) {
      throw new BadRequest(`tgate.autoThreshold must be a number above 0 (got ${JSON.stringify(t.autoThreshold)})`);
    }
    if (g !== "auto") throw new BadRequest(`tgate.autoThreshold is used only with tgate.gateStep "auto" (gateStep is ${JSON.stringify(g)})`);
  }
}

function checkDeepCache(d) {
  if (d === undefined || d === null) return;
  if (typeof d !== "object" || Array.isArray(d)) throw new BadRequest(`deepcache must be an object { interval, branch } (got ${describe(d)})`);
  if (!(Number.isInteger(d.interval) && d.interval >= 1)) {
    throw new BadRequest(`deepcache.interval must be a whole number from 1 up (a full UNet every interval steps; got ${JSON.stringify(d.interval)})`);
  }
  if (d.branch !== undefined && !(Number.isInteger(d.branch) && d.branch >= 0)) {
    throw new BadRequest(`deepcache.branch must be a whole number from 0 up (got ${JSON.stringify(d.branch)})`);
  }
}

/**
 * Checks the generate options that do not need the images decoded and returns
 * { opts, initImage, mask }: opts is what goes to the engine as JSON (loras reduced to
 * { url, scale }), initImage and mask the image sources as given (null when absent).
 * latents and onProgress are the caller's business and must already be taken out.
 */
export function shapeGenerate(options) {
  if (!options || typeof options !== "object" || Array.isArray(options)) {
    throw new BadRequest(`generate options must be an object (got ${describe(options)})`);
  }
  const { initImage = null, mask = null, ...opts } = options;
  if (initImage !== null && !isImageSource(initImage)) throw new BadRequest(`initImage must be ${IMAGE_KINDS} (got ${describe(initImage)})`);
  if (mask !== null && !isImageSource(mask)) throw new BadRequest(`mask must be ${IMAGE_KINDS} (got ${describe(mask)})`);
  if (mask !== null && initImage === null) throw new BadRequest("mask needs an initImage: inpainting repaints the white part of the mask over the init image");
  if (opts.strength !== undefined && opts.strength !== null) {
    if (!finite(opts.strength) || opts.strength <= 0 || opts.strength > 1) {
      throw new BadRequest(`strength must be a number in (0, 1] (got ${JSON.stringify(opts.strength)}): 1 repaints fully, small values stay close to the init image`);
    }
    if (initImage === null) throw new BadRequest("strength needs an initImage (it says how far img2img and inpainting move from it)");
  }
  for (const k of ["prompt", "negativePrompt", "prompt2", "negativePrompt2"]) checkString(opts, k);
  for (const k of SIZE_PAIRS) checkPair(opts, k, 1, "height, width");
  for (const k of CROP_PAIRS) checkPair(opts, k, 0, "top, left");
  const loras = shapeLoras(opts.loras);
  if (loras !== undefined) opts.loras = loras;
  checkTGate(opts.tgate);
  checkDeepCache(opts.deepcache);
  if (opts.adaptiveGuidance !== undefined && opts.adaptiveGuidance !== null) {
    const g = opts.adaptiveGuidance;
    if (!finite(g) || g < 0 || g > 1) {
      throw new BadRequest(`adaptiveGuidance must be a cosine-similarity threshold in [0, 1] (0 turns it off; got ${JSON.stringify(g)})`);
    }
  }
  if (opts.maxSequenceLength !== undefined && opts.maxSequenceLength !== null) {
    const n = opts.maxSequenceLength;
    if (!(Number.isInteger(n) && n >= 1 && n <= 4096)) {
      throw new BadRequest(`maxSequenceLength must be a whole number from 1 to 4096 (PixArt-α uses 120, PixArt-Σ 300; got ${JSON.stringify(n)})`);
    }
  }
  checkBool(opts, "resolutionBinning");
  checkBool(opts, "cleanCaption");
  return { opts, initImage, mask };
}

/** Checks that the decoded mask has the init image's size; both are { width, height, ... }. */
export function checkMaskSize(initImage, mask) {
  if (!mask) return;
  if (mask.width !== initImage.width || mask.height !== initImage.height) {
    throw new BadRequest(`the mask is ${mask.width}×${mask.height} but the initImage is ${initImage.width}×${initImage.height}: draw or scale the mask to the init image's size`);
  }
}

/** Checks the load options this module knows (config for single-file checkpoints). */
export function checkLoad(source, options) {
  if (typeof source !== "string" || source.trim() === "") {
    throw new BadRequest(`the model source must be a Hub repo id, a folder URL or the URL of one .safetensors checkpoint (got ${describe(source)})`);
  }
  if (options && options.config !== undefined && (typeof options.config !== "string" || options.config.trim() === "")) {
    throw new BadRequest(`config must be a Hub repo id or folder URL of a diffusers folder (got ${describe(options.config)})`);
  }
}

/**
 * The URL a picked file is passed as: an object URL whose fragment is the file's name
 * (blob:…#my-lora.safetensors), so the engine can show and record that name; fetch ignores the
 * fragment. createURL is URL.createObjectURL (a parameter, for tests).
 */
export function fileURL(file, createURL = (f) => URL.createObjectURL(f)) {
  const url = createURL(file);
  return file && file.name ? `${url}#${encodeURIComponent(file.name)}` : url;
}

/**
 * The name a LoRA is recorded under in the PNG parameters: the last path segment of its URL
 * (or the fragment of a blob: URL), without ".safetensors". "owner/repo/detail.safetensors" →
 * "detail"; "blob:https://x/uuid#my%20style.safetensors" → "my style".
 */
export function loraName(url) {
  let s = String(url);
  const hash = s.indexOf("#");
  if (s.startsWith("blob:") && hash >= 0) s = decodeURIComponent(s.slice(hash + 1));
  else {
    if (hash >= 0) s = s.slice(0, hash);
    s = s.replace(/[?].*$/, "");
    s = s.slice(s.lastIndexOf("/") + 1);
  }
  return s.replace(/\.safetensors$/i, "");
}
