// node --test web/
// The settings of editing, LoRA, SD-XL, PixArt and the speed-ups in a PNG's parameters text, as
// docs/page.md defines them (values with commas or colons JSON-quoted, as pnginfo.Format does).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseParameters, parseLoras } from "./params.js";

test("img2img, LoRA and SD-XL settings read back", () => {
  const text = [
    "a castle",
    "Negative prompt: fog",
    'Steps: 25, Sampler: Euler, CFG scale: 5, Seed: 3, Size: 1024x768, Model: stabilityai/stable-diffusion-xl-base-1.0, ' +
      'Denoising strength: 0.6, LoRA: "pixel-art:0.8, https://x/y/detail.safetensors:1.5", Prompt 2: "oil, canvas", ' +
      'Negative prompt 2: dull, Original size: "1024,768", Crops coords top left: "0,64", Target size: "(768, 1024)", ' +
      'Negative original size: "512,512", Negative crops coords top left: "0,0", Negative target size: "1024,1024"',
  ].join("\n");
  const o = parseParameters(text);
  assert.equal(o.prompt, "a castle");
  assert.equal(o.negativePrompt, "fog");
  assert.equal(o.strength, 0.6);
  assert.deepEqual(o.loras, [
    { name: "pixel-art", scale: 0.8 },
    { name: "https://x/y/detail.safetensors", scale: 1.5 },
  ]);
  assert.equal(o.prompt2, "oil, canvas");
  assert.equal(o.negativePrompt2, "dull");
  assert.deepEqual(o.originalSize, [1024, 768]);
  assert.deepEqual(o.cropsCoordsTopLeft, [0, 64]);
  assert.deepEqual(o.targetSize, [768, 1024]);
  assert.deepEqual(o.negativeOriginalSize, [512, 512]);
  assert.deepEqual(o.negativeCropsCoordsTopLeft, [0, 0]);
  assert.deepEqual(o.negativeTargetSize, [1024, 1024]);
});

test("DeepCache, adaptive guidance, the auto gate and PixArt settings read back", () => {
  const o = parseParameters(
    "a fox\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 4.5, Seed: 1, T-GATE: v2, Gate step: auto, Auto gate threshold: 0.02, " +
      "DeepCache interval: 3, DeepCache branch: 0, Adaptive guidance: 0.9993, Max sequence length: 300, " +
      "Resolution binning: false, Clean caption: true",
  );
  assert.deepEqual(o.tgate, { mode: "v2", gateStep: "auto", autoThreshold: 0.02 });
  assert.deepEqual(o.deepcache, { interval: 3, branch: 0 });
  assert.equal(o.adaptiveGuidance, 0.9993);
  assert.equal(o.maxSequenceLength, 300);
  assert.equal(o.resolutionBinning, false);
  assert.equal(o.cleanCaption, true);
  const n = parseParameters("x\nSteps: 20, CFG scale: 1, Seed: 1, Gate step: 10");
  assert.deepEqual(n.tgate, { gateStep: 10 });
  assert.equal(n.deepcache, undefined);
  assert.equal(n.resolutionBinning, undefined);
});

test("parseLoras", () => {
  assert.deepEqual(parseLoras("a:1, b"), [{ name: "a", scale: 1 }, { name: "b", scale: 1 }]);
  assert.deepEqual(parseLoras("o/r/x.safetensors:-0.5"), [{ name: "o/r/x.safetensors", scale: -0.5 }]);
  assert.deepEqual(parseLoras(""), []);
});
