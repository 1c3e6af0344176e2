// node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { toRGBA, luminance, maskCoverage, invertMask, sizeFor } from "./imagedata.js";

test("toRGBA copies a plain RGBA picture", async () => {
  const src = { width: 2, height: 1, data: new Uint8ClampedArray([1, 2, 3, 4, 5, 6, 7, 8]) };
  const out = await toRGBA(src, "initImage");
  assert.deepEqual([...out.data], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.notEqual(out.data.buffer, src.data.buffer, "a copy, so transferring it leaves the caller's array alone");
  await assert.rejects(toRGBA({ width: 1 }, "mask"), (e) => e.code === "bad-request" && /^mask must be/.test(e.message));
});

test("luminance is PIL's convert('L')", () => {
  // PIL: L = R*299/1000 + G*587/1000 + B*114/1000, rounded (ImagingConvert rgb2l).
  for (const [r, g, b] of [[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 200, 99], [128, 128, 128]]) {
    const want = Math.round((r * 299 + g * 587 + b * 114) / 1000);
    assert.ok(Math.abs(luminance(r, g, b) - want) <= 0, `${r},${g},${b}: ${luminance(r, g, b)} vs ${want}`);
  }
});

test("mask coverage and inversion", () => {
  const data = new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 200, 200, 255]);
  const m = { width: 2, height: 2, data };
  assert.equal(maskCoverage(m), 0.5);
  invertMask(data);
  assert.deepEqual([...data], [0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 55, 55, 55, 255]);
  assert.equal(maskCoverage(m), 0.5);
});

test("sizeFor rounds down to multiples of 8", () => {
  assert.deepEqual(sizeFor(512, 512), { width: 512, height: 512 });
  assert.deepEqual(sizeFor(1023, 769), { width: 1016, height: 768 });
  assert.deepEqual(sizeFor(5, 3), { width: 8, height: 8 });
});
