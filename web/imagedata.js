// imagedata.js: pictures as the engine takes them: { width, height, data } with data RGBA bytes,
// row-major, straight (not premultiplied) alpha, the colour values as stored in the file (no
// colour-space conversion). tgate.js turns initImage and mask into this form before they go to
// the Worker, so the Worker never sees a DOM object. The pixel helpers at the end are pure, for
// the page's mask brush and for node tests (web/imagedata.test.mjs).

import { BadRequest, isRGBA, describe, IMAGE_KINDS } from "./options.js";

// createImageBitmap options that keep the stored colour values and straight alpha.
const BITMAP_OPTIONS = { premultiplyAlpha: "none", colorSpaceConversion: "none" };

function has(name) {
  return typeof globalThis[name] === "function";
}

/** A copy of a picture's pixels as { width, height, data: Uint8ClampedArray }. */
function copyRGBA(v) {
  return { width: v.width, height: v.height, data: new Uint8ClampedArray(v.data) };
}

/** The pixels of an ImageBitmap, read back through an OffscreenCanvas. */
function bitmapPixels(bitmap) {
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const img = ctx.getImageData(0, 0, width, height);
  return { width, height, data: img.data };
}

/**
 * toRGBA converts an image source (what engine.generate takes as initImage or mask) to
 * { width, height, data: Uint8ClampedArray } RGBA. ImageData and { width, height, data } are
 * copied as they are; every other kind is decoded with createImageBitmap (premultiplyAlpha
 * "none", colorSpaceConversion "none") and read back with an OffscreenCanvas. name ("initImage",
 * "mask") goes into the error messages.
 */
export async function toRGBA(source, name) {
  if (isRGBA(source)) return copyRGBA(source);
  if (has("ImageData") && source instanceof ImageData) return copyRGBA(source);
  if (has("HTMLImageElement") && source instanceof HTMLImageElement) {
    try {
      await source.decode();
    } catch (e) {
      throw new BadRequest(`${name}: the <img> (${source.currentSrc || source.src || "no src"}) could not be decoded: ${e.message}`);
    }
  }
  const decodable = ["Blob", "ImageBitmap", "HTMLCanvasElement", "OffscreenCanvas", "HTMLImageElement"].some((n) => has(n) && source instanceof globalThis[n]);
  if (!decodable) throw new BadRequest(`${name} must be ${IMAGE_KINDS} (got ${describe(source)})`);
  if (!has("createImageBitmap") || !has("OffscreenCanvas")) {
    throw new BadRequest(`${name}: this browser has no createImageBitmap or OffscreenCanvas; pass an ImageData instead`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(source, BITMAP_OPTIONS);
  } catch (e) {
    const what = has("Blob") && source instanceof Blob ? `the file${source.name ? ` ${source.name}` : ""} (${source.type || "unknown type"})` : describe(source);
    throw new BadRequest(`${name}: ${what} is not an image the browser can decode (${e.message})`);
  }
  try {
    if (!bitmap.width || !bitmap.height) throw new BadRequest(`${name} is empty (${bitmap.width}×${bitmap.height})`);
    return bitmapPixels(bitmap);
  } catch (e) {
    if (e instanceof BadRequest) throw e;
    // a canvas or <img> with pixels from another origin (no CORS) cannot be read back
    throw new BadRequest(`${name}: its pixels cannot be read (${e.message}); an image from another site needs CORS (crossOrigin="anonymous")`);
  } finally {
    bitmap.close();
  }
}

// ---- pixels (pure) ---------------------------------------------------------------------------

/**
 * The luminance PIL's Image.convert("L") computes for one RGB pixel (ITU-R 601-2:
 * L = R·299/1000 + G·587/1000 + B·114/1000, in PIL's fixed point with rounding). The engine uses
 * it to read a mask; the page uses it to count what a mask repaints.
 */
export function luminance(r, g, b) {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** The fraction of a mask's pixels whose luminance is at least 128 (what gets repainted). */
export function maskCoverage(mask) {
  const d = mask.data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (luminance(d[i], d[i + 1], d[i + 2]) >= 128) n++;
  return n / (mask.width * mask.height);
}

/** Inverts a mask's colour channels in place (white ↔ black), leaving alpha opaque. */
export function invertMask(data) {
  for (let i = 0; i < data.length; i += 4) {
    data[i] = 255 - data[i];
    data[i + 1] = 255 - data[i + 1];
    data[i + 2] = 255 - data[i + 2];
    data[i + 3] = 255;
  }
  return data;
}

/**
 * The generation size for an init image: its width and height rounded down to multiples of 8
 * (as diffusers' VaeImageProcessor does), at least 8.
 */
export function sizeFor(width, height) {
  const down = (n) => Math.max(8, n - (n % 8));
  return { width: down(width), height: down(height) };
}
