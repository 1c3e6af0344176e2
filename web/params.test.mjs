// node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readParameters, readPngText, parseParameters } from "./params.js";

// CRC-32 (ISO-HDLC, as PNG uses), computed here so the chunks are valid.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function latin1(s) {
  return Uint8Array.from(s, (ch) => {
    const c = ch.charCodeAt(0);
    if (c > 255) throw new Error("not Latin-1");
    return c;
  });
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// A 1×1 grey PNG with the given extra chunks between IHDR and IDAT.
function png(...extra) {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, 1);
  v.setUint32(4, 1);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  // zlib stream of the single scanline [filter 0, pixel 0x80], stored uncompressed
  const idat = Uint8Array.from([0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x80, 0x00, 0x82, 0x00, 0x81]);
  return concat(
    Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  );
}

const tEXt = (key, text) => chunk("tEXt", concat(latin1(key), [0], latin1(text)));
const iTXt = (key, text, compressed = false) =>
  chunk("iTXt", concat(latin1(key), [0, compressed ? 1 : 0, 0], latin1("en"), [0], [0], new TextEncoder().encode(text)));

test("CRC-32 matches the known check value", () => {
  assert.equal(crc32(latin1("123456789")), 0xcbf43926);
  // IEND's CRC is fixed by the PNG spec
  assert.deepEqual([...chunk("IEND", new Uint8Array(0)).subarray(8)], [0xae, 0x42, 0x60, 0x82]);
});

test("A1111's own parameters line", async () => {
  const text =
    "masterpiece, a red fox in the snow\n" +
    "Negative prompt: blurry, lowres\n" +
    "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: abc, Model: v1-5";
  const opts = await readParameters(new Blob([png(tEXt("parameters", text))]));
  assert.deepEqual(opts, {
    prompt: "masterpiece, a red fox in the snow",
    negativePrompt: "blurry, lowres",
    steps: 20,
    scheduler: "euler-a",
    guidance: 7,
    seed: 1234,
    width: 512,
    height: 768,
    model: "v1-5",
  });
});

test("the engine's own line with T-GATE, quoted values and a multi-line prompt", async () => {
  const text = [
    "a red fox",
    "sitting, looking left",
    "Negative prompt: blurry",
    'Steps: 25, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 4294967295, Size: 640x512, Model: "https://example.com/models/my, model/", ' +
      "Guidance rescale: 0.7, Timestep spacing: trailing, T-GATE: v2, Gate step: 10, SP interval: 5, FI interval: 1, Warm up: 2, " +
      'Decoder: taesd, Note: "a: b, \\"c\\"", Unknown: x',
  ].join("\n");
  const opts = await readParameters(new Blob([png(tEXt("Software", "tgate"), tEXt("parameters", text))]));
  assert.deepEqual(opts, {
    prompt: "a red fox\nsitting, looking left",
    negativePrompt: "blurry",
    steps: 25,
    scheduler: "dpm++2m",
    guidance: 7.5,
    seed: 4294967295,
    width: 640,
    height: 512,
    model: "https://example.com/models/my, model/",
    guidanceRescale: 0.7,
    timestepSpacing: "trailing",
    tgate: { mode: "v2", gateStep: 10, spInterval: 5, fiInterval: 1, warmUp: 2 },
    decoder: "taesd",
  });
});

test("samplers map to the engine's schedulers", () => {
  const cases = { DDIM: "ddim", PNDM: "pndm", PLMS: "pndm", Euler: "euler", "Euler a": "euler-a", "DPM++ 2M": "dpm++2m", LCM: "lcm" };
  for (const [name, id] of Object.entries(cases)) {
    const opts = parseParameters(`p\nSteps: 4, Sampler: ${name}, CFG scale: 1, Seed: 1`);
    assert.equal(opts.scheduler, id, name);
  }
  // a sampler the engine does not have is left out
  assert.equal(parseParameters("p\nSteps: 4, Sampler: DPM++ SDE, Seed: 1").scheduler, undefined);
});

test("a prompt with no settings line, and a settings line with no prompt", () => {
  assert.deepEqual(parseParameters("just a prompt: with a colon"), { prompt: "just a prompt: with a colon" });
  assert.deepEqual(parseParameters("Steps: 10, Sampler: DDIM, Seed: 3"), { prompt: "", steps: 10, scheduler: "ddim", seed: 3 });
});

test("iTXt in UTF-8; compressed iTXt is skipped", async () => {
  const text = "un renard roux, 狐\nSteps: 4, Sampler: LCM, CFG scale: 8, Seed: 7, T-GATE: off";
  const opts = await readParameters(png(iTXt("parameters", text)));
  assert.equal(opts.prompt, "un renard roux, 狐");
  assert.equal(opts.scheduler, "lcm");
  assert.deepEqual(opts.tgate, { mode: "off" });

  const texts = await readPngText(png(iTXt("parameters", "x", true), tEXt("Title", "café")));
  assert.equal(texts.has("parameters"), false);
  assert.equal(texts.get("Title"), "café");
});

test("no parameters, or not a PNG", async () => {
  assert.equal(await readParameters(new Blob([png(tEXt("Comment", "hello"))])), null);
  assert.equal(await readParameters(new Blob(["GIF89a not a png"])), null);
  assert.equal(await readParameters(new Blob([])), null);
  // a truncated chunk ends the scan without throwing
  const cut = png(tEXt("parameters", "a fox\nSteps: 1, Sampler: DDIM, Seed: 1")).subarray(0, 40);
  assert.equal(await readParameters(cut), null);
});
