// Generation parameters stored in a PNG, in the text format AUTOMATIC1111's web UI writes:
//
//   a red fox
//   Negative prompt: blurry
//   Steps: 25, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 512x512, Model: owner/name
//
// Besides A1111's own keys (Denoising strength among them) it reads the engine's: T-GATE, Gate
// step ("auto" too), Auto gate threshold, SP interval, FI interval, Warm up, Guidance rescale,
// Timestep spacing, Decoder, LoRA ("name:scale, name:scale"), Prompt 2, Negative prompt 2, the
// SD-XL micro-conditioning pairs in diffusers' order ("Original size: "1024,768"" is (height,
// width), "Crops coords top left: "0,0"" is (top, left)), DeepCache interval, DeepCache branch,
// Adaptive guidance, Max sequence length, Resolution binning, Clean caption. docs/page.md lists
// them all.
//
// readParameters(blob) finds the `parameters` text chunk (tEXt, or uncompressed iTXt) and
// returns the engine's generate options, or null when the PNG carries none.

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

// A1111 sampler names (and the engine's own scheduler ids) → engine scheduler ids.
const SAMPLERS = new Map([
  ["ddim", "ddim"],
  ["pndm", "pndm"],
  ["plms", "pndm"],
  ["euler", "euler"],
  ["euler a", "euler-a"],
  ["euler-a", "euler-a"],
  ["dpm++ 2m", "dpm++2m"],
  ["dpm++2m", "dpm++2m"],
  ["lcm", "lcm"],
]);

const SPACINGS = new Set(["leading", "trailing", "linspace"]);
const TGATE_MODES = new Set(["off", "v1", "v2"]);
const DECODERS = new Set(["vae", "taesd", "none"]);

// The key: value pairs of the last line; a value is a JSON-quoted string or runs to the next comma.
// (A1111's re_param, with Python's Unicode \w and \s spelled out.)
const PARAM_RE = /[\s\p{Z}]*([\p{L}\p{N}_][\p{L}\p{N}_ \-/]+):[\s\p{Z}]*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/gu;

/** True when the bytes start with the PNG signature. */
export function isPng(bytes) {
  if (bytes.length < 8) return false;
  return PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

async function toBytes(src) {
  if (src instanceof Uint8Array) return src;
  if (src instanceof ArrayBuffer) return new Uint8Array(src);
  if (ArrayBuffer.isView(src)) return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  return new Uint8Array(await src.arrayBuffer());
}

/**
 * The text chunks of a PNG as a Map keyword → text: tEXt (Latin-1) and uncompressed iTXt (UTF-8).
 * Compressed chunks (zTXt, compressed iTXt) are skipped. Returns null when the bytes are not a PNG.
 */
export async function readPngText(src) {
  const bytes = await toBytes(src);
  if (!isPng(bytes)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const texts = new Map();
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
    const start = pos + 8;
    const end = start + length;
    if (end > bytes.length) break; // truncated file: keep what was read
    const data = bytes.subarray(start, end);
    if (type === "tEXt") {
      const nul = data.indexOf(0);
      if (nul > 0) texts.set(latin1.decode(data.subarray(0, nul)), latin1.decode(data.subarray(nul + 1)));
    } else if (type === "iTXt") {
      // keyword \0 compression-flag compression-method language \0 translated-keyword \0 text
      const nul = data.indexOf(0);
      if (nul > 0 && nul + 2 < data.length && data[nul + 1] === 0) {
        const langEnd = data.indexOf(0, nul + 3);
        const transEnd = langEnd < 0 ? -1 : data.indexOf(0, langEnd + 1);
        if (transEnd >= 0) texts.set(latin1.decode(data.subarray(0, nul)), utf8.decode(data.subarray(transEnd + 1)));
      }
    } else if (type === "IEND") {
      break;
    }
    pos = end + 4; // skip the CRC
  }
  return texts;
}

/** The generate options stored in a PNG's `parameters` chunk, or null. */
export async function readParameters(blob) {
  const texts = await readPngText(blob);
  if (!texts || !texts.has("parameters")) return null;
  return parseParameters(texts.get("parameters"));
}

function unquote(v) {
  if (v.length >= 2 && v[0] === '"' && v[v.length - 1] === '"') {
    try {
      return JSON.parse(v);
    } catch {
      return v.slice(1, -1);
    }
  }
  return v;
}

function keyValues(line) {
  const out = [];
  for (const m of line.matchAll(PARAM_RE)) out.push([m[1].trim(), unquote(m[2].trim())]);
  return out;
}

function int(v) {
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}

function num(v) {
  const n = Number(v);
  return v !== "" && Number.isFinite(n) ? n : undefined;
}

function bool(v) {
  const t = String(v).toLowerCase();
  return t === "true" ? true : t === "false" ? false : undefined;
}

/** "1024,768", "(1024, 768)" or "1024x768" → [1024, 768] in the order written; else undefined. */
function pair(v) {
  const m = /^\(?\s*(\d+)\s*[,x]\s*(\d+)\s*\)?$/.exec(String(v).trim());
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** "detail:0.8, style:1" → [{ name: "detail", scale: 0.8 }, ...]; a name may hold colons (a URL). */
export function parseLoras(v) {
  const out = [];
  for (const part of String(v).split(/,\s*/)) {
    const item = part.trim();
    if (!item) continue;
    const colon = item.lastIndexOf(":");
    const scale = colon > 0 ? num(item.slice(colon + 1).trim()) : undefined;
    if (scale === undefined) out.push({ name: item, scale: 1 });
    else out.push({ name: item.slice(0, colon).trim(), scale });
  }
  return out;
}

// The engine's pair keys → generate option names.
const PAIR_KEYS = new Map([
  ["Original size", "originalSize"],
  ["Crops coords top left", "cropsCoordsTopLeft"],
  ["Target size", "targetSize"],
  ["Negative original size", "negativeOriginalSize"],
  ["Negative crops coords top left", "negativeCropsCoordsTopLeft"],
  ["Negative target size", "negativeTargetSize"],
]);

/** Parses A1111's parameters text into generate options (unknown keys are ignored). */
export function parseParameters(text) {
  const lines = String(text).replace(/\r\n?/g, "\n").trim().split("\n");
  let last = lines.pop();
  let pairs = keyValues(last);
  // As A1111: a last line with fewer than three settings is part of the prompt.
  if (pairs.length < 3 && !/^\s*Steps:/.test(last)) {
    if (last !== "") lines.push(last);
    last = "";
    pairs = [];
  }

  const prompt = [];
  const negative = [];
  let inNegative = false;
  for (let line of lines) {
    line = line.trim();
    if (line.startsWith("Negative prompt:")) {
      inNegative = true;
      line = line.slice("Negative prompt:".length).trim();
    }
    (inNegative ? negative : prompt).push(line);
  }

  const opts = { prompt: prompt.join("\n") };
  if (inNegative) opts.negativePrompt = negative.join("\n");
  const tgate = {};
  const deepcache = {};
  const set = (obj, key, value) => {
    if (value !== undefined) obj[key] = value;
  };

  for (const [key, value] of pairs) {
    switch (key) {
      case "Steps":
        set(opts, "steps", int(value));
        break;
      case "Sampler":
        set(opts, "scheduler", SAMPLERS.get(value.toLowerCase()));
        break;
      case "CFG scale":
        set(opts, "guidance", num(value));
        break;
      case "Seed":
        set(opts, "seed", int(value));
        break;
      case "Size": {
        const m = /^(\d+)\s*x\s*(\d+)$/.exec(value);
        if (m) {
          opts.width = Number(m[1]);
          opts.height = Number(m[2]);
        }
        break;
      }
      case "Model":
        if (value) opts.model = value;
        break;
      case "Guidance rescale":
        set(opts, "guidanceRescale", num(value));
        break;
      case "Timestep spacing":
        if (SPACINGS.has(value.toLowerCase())) opts.timestepSpacing = value.toLowerCase();
        break;
      case "T-GATE":
        if (TGATE_MODES.has(value.toLowerCase())) tgate.mode = value.toLowerCase();
        break;
      case "Gate step":
        set(tgate, "gateStep", value.toLowerCase() === "auto" ? "auto" : int(value));
        break;
      case "Auto gate threshold":
        set(tgate, "autoThreshold", num(value));
        break;
      case "SP interval":
        set(tgate, "spInterval", int(value));
        break;
      case "FI interval":
        set(tgate, "fiInterval", int(value));
        break;
      case "Warm up":
        set(tgate, "warmUp", int(value));
        break;
      case "Decoder":
        if (DECODERS.has(value.toLowerCase())) opts.decoder = value.toLowerCase();
        break;
      case "Denoising strength":
        set(opts, "strength", num(value));
        break;
      case "LoRA": {
        const loras = parseLoras(value);
        if (loras.length) opts.loras = loras;
        break;
      }
      case "Prompt 2":
        opts.prompt2 = value;
        break;
      case "Negative prompt 2":
        opts.negativePrompt2 = value;
        break;
      case "DeepCache interval":
        set(deepcache, "interval", int(value));
        break;
      case "DeepCache branch":
        set(deepcache, "branch", int(value));
        break;
      case "Adaptive guidance":
        set(opts, "adaptiveGuidance", num(value));
        break;
      case "Max sequence length":
        set(opts, "maxSequenceLength", int(value));
        break;
      case "Resolution binning":
        set(opts, "resolutionBinning", bool(value));
        break;
      case "Clean caption":
        set(opts, "cleanCaption", bool(value));
        break;
      default:
        if (PAIR_KEYS.has(key)) set(opts, PAIR_KEYS.get(key), pair(value));
        break; // A1111 writes many more (Model hash, Schedule type, ...): not ours
    }
  }
  if (Object.keys(tgate).length) opts.tgate = tgate;
  if (deepcache.interval !== undefined) opts.deepcache = deepcache;
  return opts;
}
