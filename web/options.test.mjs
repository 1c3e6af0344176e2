// node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { shapeGenerate, checkMaskSize, checkLoad, shapeLoras, fileURL, loraName, isImageSource, BadRequest } from "./options.js";

const rgba = (w, h) => ({ width: w, height: h, data: new Uint8ClampedArray(w * h * 4) });

function rejects(f, pattern) {
  assert.throws(f, (e) => e instanceof BadRequest && e.code === "bad-request" && pattern.test(e.message), String(pattern));
}

test("shapeGenerate takes the images out of the JSON options", () => {
  const init = rgba(16, 8);
  const mask = rgba(16, 8);
  const { opts, initImage, mask: m } = shapeGenerate({ prompt: "a fox", initImage: init, mask, strength: 0.6 });
  assert.deepEqual(opts, { prompt: "a fox", strength: 0.6 });
  assert.equal(initImage, init);
  assert.equal(m, mask);
  const plain = shapeGenerate({ prompt: "x" });
  assert.equal(plain.initImage, null);
  assert.equal(plain.mask, null);
});

test("shapeGenerate rejects what is not an image", () => {
  rejects(() => shapeGenerate({ initImage: "fox.png" }), /^initImage must be .*got a string/);
  rejects(() => shapeGenerate({ initImage: { width: 2, height: 2, data: new Uint8ClampedArray(3) } }), /^initImage must be/);
  rejects(() => shapeGenerate({ initImage: rgba(2, 2), mask: [1, 2] }), /^mask must be .*got an Array/);
  rejects(() => shapeGenerate({ mask: rgba(2, 2) }), /mask needs an initImage/);
  assert.equal(isImageSource(rgba(1, 1)), true);
  assert.equal(isImageSource({ width: 1, height: 1, data: new Uint8Array(4) }), true);
  assert.equal(isImageSource(null), false);
});

test("strength must be in (0, 1] and needs an init image", () => {
  for (const s of [0, -0.1, 1.01, NaN, "0.5"]) rejects(() => shapeGenerate({ initImage: rgba(1, 1), strength: s }), /^strength must be a number in \(0, 1\]/);
  assert.equal(shapeGenerate({ initImage: rgba(1, 1), strength: 1 }).opts.strength, 1);
  assert.equal(shapeGenerate({ initImage: rgba(1, 1), strength: 0.01 }).opts.strength, 0.01);
  rejects(() => shapeGenerate({ strength: 0.5 }), /strength needs an initImage/);
});

test("the mask must have the init image's size", () => {
  checkMaskSize(rgba(64, 48), rgba(64, 48));
  checkMaskSize(rgba(64, 48), null);
  rejects(() => checkMaskSize(rgba(64, 48), rgba(48, 64)), /mask is 48×64 but the initImage is 64×48/);
});

test("loras are reduced to { url, scale } with scale 1 by default", () => {
  const { opts } = shapeGenerate({ loras: [{ url: " owner/repo/a.safetensors ", name: "a" }, { url: "https://x/b.safetensors", scale: 0.5 }] });
  assert.deepEqual(opts.loras, [
    { url: "owner/repo/a.safetensors", scale: 1 },
    { url: "https://x/b.safetensors", scale: 0.5 },
  ]);
  assert.equal(shapeLoras(undefined), undefined);
  rejects(() => shapeLoras({ url: "x" }), /^loras must be an Array/);
  rejects(() => shapeLoras([{ url: "" }]), /^loras\[0\]\.url must be/);
  rejects(() => shapeLoras([{ url: "a/b/c.safetensors", scale: "1" }]), /^loras\[0\]\.scale must be a finite number/);
});

test("SD-XL micro-conditioning pairs and prompts", () => {
  const o = { prompt2: "p", negativePrompt2: "n", originalSize: [1024, 768], cropsCoordsTopLeft: [0, 0], targetSize: [1024, 1024], negativeOriginalSize: [512, 512], negativeCropsCoordsTopLeft: [8, 16], negativeTargetSize: [1024, 1024] };
  assert.deepEqual(shapeGenerate({ ...o }).opts, o);
  rejects(() => shapeGenerate({ originalSize: [1024] }), /^originalSize must be \[height, width\]/);
  rejects(() => shapeGenerate({ targetSize: [0, 8] }), /^targetSize must be \[height, width\], two whole numbers from 1 up/);
  rejects(() => shapeGenerate({ cropsCoordsTopLeft: [-1, 0] }), /^cropsCoordsTopLeft must be \[top, left\]/);
  rejects(() => shapeGenerate({ prompt2: 3 }), /^prompt2 must be a string/);
});

test("DeepCache, adaptive guidance and the auto gate", () => {
  const ok = { deepcache: { interval: 3, branch: 0 }, adaptiveGuidance: 0.9993, tgate: { mode: "v2", gateStep: "auto", autoThreshold: 0.01 } };
  assert.deepEqual(shapeGenerate({ ...ok }).opts, ok);
  rejects(() => shapeGenerate({ deepcache: { interval: 0 } }), /^deepcache\.interval must be a whole number from 1/);
  rejects(() => shapeGenerate({ deepcache: { interval: 2, branch: -1 } }), /^deepcache\.branch must be/);
  rejects(() => shapeGenerate({ deepcache: 3 }), /^deepcache must be an object/);
  rejects(() => shapeGenerate({ adaptiveGuidance: 1.5 }), /^adaptiveGuidance must be a cosine-similarity threshold/);
  rejects(() => shapeGenerate({ tgate: { mode: "v2", gateStep: "soon" } }), /^tgate\.gateStep must be a whole number from 1 up or "auto"/);
  rejects(() => shapeGenerate({ tgate: { mode: "v2", gateStep: 10, autoThreshold: 0.1 } }), /autoThreshold is used only with tgate\.gateStep "auto"/);
  rejects(() => shapeGenerate({ tgate: { mode: "v2", gateStep: "auto", autoThreshold: 0 } }), /autoThreshold must be a number above 0/);
});

test("PixArt options", () => {
  const o = { maxSequenceLength: 300, resolutionBinning: false, cleanCaption: true };
  assert.deepEqual(shapeGenerate({ ...o }).opts, o);
  rejects(() => shapeGenerate({ maxSequenceLength: 0 }), /^maxSequenceLength must be/);
  rejects(() => shapeGenerate({ resolutionBinning: "no" }), /^resolutionBinning must be true or false/);
});

test("load checks the source and config", () => {
  checkLoad("owner/name", {});
  checkLoad("blob:http://x/1#m.safetensors", { config: "stable-diffusion-v1-5/stable-diffusion-v1-5" });
  rejects(() => checkLoad("", {}), /^the model source must be/);
  rejects(() => checkLoad("https://x/m.safetensors", { config: 5 }), /^config must be a Hub repo id/);
});

test("file URLs carry the file's name; LoRA names", () => {
  assert.equal(fileURL({ name: "my style.safetensors" }, () => "blob:http://x/u"), "blob:http://x/u#my%20style.safetensors");
  assert.equal(loraName("blob:http://x/u#my%20style.safetensors"), "my style");
  assert.equal(loraName("owner/repo/detail.safetensors"), "detail");
  assert.equal(loraName("https://h/x/y/pixel-art.safetensors?download=true"), "pixel-art");
});
