// The Image panel: an init image (dropped, pasted, picked, or sent back from the gallery) for
// img2img, its strength, and a mask brush for inpainting.
//
// The mask is a canvas of the init image's own size, opaque black (kept) with white strokes
// (repainted), which is what diffusers' inpainting pipelines read (PIL "L": white = repaint). It is
// shown over the image at half opacity; the brush size is in the image's pixels.

import { sizeFor, invertMask, maskCoverage } from "../imagedata.js";

const $ = (id) => document.getElementById(id);

// The pipelines' default strengths (diffusers' __call__ defaults): SD 1.x/2.x, and SD-XL's.
const STRENGTHS = { sd: { img2img: 0.8, inpaint: 1.0 }, sdxl: { img2img: 0.3, inpaint: 0.9999 } };
let DEFAULT_STRENGTH = STRENGTHS.sd;

const state = {
  blob: null, // the init image as given (a Blob or File); what the engine decodes
  name: "",
  width: 0,
  height: 0,
  strengthTouched: false, // a person moved the slider: keep their value when the mask turns on
  painting: false,
  last: null, // the previous brush point in image pixels
  onChange: () => {},
};

function maskCtx() {
  return $("mask-canvas").getContext("2d", { willReadFrequently: true });
}

function fillMask(color) {
  const c = $("mask-canvas");
  const ctx = maskCtx();
  ctx.save();
  ctx.globalCompositeOperation = "source-over";
  ctx.fillStyle = color;
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.restore();
}

/** The brush position of a pointer event in the mask's pixels. */
function pointOf(ev) {
  const c = $("mask-canvas");
  const r = c.getBoundingClientRect();
  return { x: ((ev.clientX - r.left) / r.width) * c.width, y: ((ev.clientY - r.top) / r.height) * c.height };
}

/** Paints a round stroke from the last point to p (a dot when there is none). */
function paint(p) {
  const ctx = maskCtx();
  const size = Number($("brush-size").value) || 1;
  ctx.save();
  ctx.strokeStyle = ctx.fillStyle = $("mask-erase").checked ? "#000" : "#fff";
  ctx.lineWidth = size;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  if (state.last) {
    ctx.moveTo(state.last.x, state.last.y);
    ctx.lineTo(p.x, p.y);
    ctx.stroke();
  } else {
    ctx.arc(p.x, p.y, size / 2, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.restore();
  state.last = p;
}

function maskActive() {
  return !!state.blob && $("mask-on").checked;
}

function updateStrengthLabel() {
  $("strength-value").textContent = Number($("strength").value).toFixed(2);
}

function updateMaskNote() {
  const note = $("mask-coverage");
  if (!maskActive()) {
    note.textContent = "";
    return;
  }
  const c = $("mask-canvas");
  const cover = maskCoverage(maskCtx().getImageData(0, 0, c.width, c.height));
  note.textContent = cover === 0 ? "The mask is empty: paint over what to repaint." : `The mask repaints ${Math.round(cover * 100)}% of the image.`;
}

function sync() {
  const has = !!state.blob;
  $("init-stack").hidden = !has;
  $("init-empty").hidden = has;
  $("init-clear").disabled = !has;
  $("strength").disabled = !has;
  $("mask-on").disabled = !has;
  $("mask-tools").hidden = !maskActive();
  $("mask-canvas").hidden = !maskActive();
  $("init-info").textContent = has ? `${state.name || "image"}: ${state.width}×${state.height}` : "";
  updateStrengthLabel();
  updateMaskNote();
}

/**
 * Sets the init image from a Blob or File (a PNG, JPEG, WebP, …): draws it, makes a black mask of
 * its size and reports its generation size (rounded down to multiples of 8) to onChange.
 */
export async function setInitImage(blob, name = blob.name || "image") {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch (e) {
    throw new Error(`${name} is not an image this browser can decode (${e.message}).`);
  }
  const { width, height } = bitmap;
  for (const id of ["init-canvas", "mask-canvas"]) {
    $(id).width = width;
    $(id).height = height;
  }
  $("init-canvas").getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  Object.assign(state, { blob, name, width, height, last: null });
  fillMask("#000");
  // A new image starts as img2img: the old mask does not fit it.
  $("mask-on").checked = false;
  if (!state.strengthTouched) $("strength").value = String(DEFAULT_STRENGTH.img2img);
  sync();
  state.onChange({ width, height, size: sizeFor(width, height) });
}

/** Removes the init image (and with it the mask). */
export function clearInitImage() {
  Object.assign(state, { blob: null, name: "", width: 0, height: 0, last: null });
  $("mask-on").checked = false;
  sync();
  state.onChange(null);
}

/**
 * The panel's part of the generate options: { initImage, strength } for img2img, plus the mask
 * canvas for inpainting; {} without an init image.
 */
export function readImageOptions() {
  if (!state.blob) return {};
  const o = { initImage: state.blob, strength: Number($("strength").value) };
  if (maskActive()) o.mask = $("mask-canvas");
  return o;
}

/** What the panel holds, for the page's own use: { name, width, height, masked } or null. */
export function initImageInfo() {
  return state.blob ? { name: state.name, width: state.width, height: state.height, masked: maskActive() } : null;
}

/**
 * Makes the slider's defaults the model kind's ("sdxl" has its own; the rest SD's) and, unless a
 * person moved it, puts it at the default for the image or mask now in the panel.
 */
export function setStrengthDefaults(kind) {
  DEFAULT_STRENGTH = STRENGTHS[kind] || STRENGTHS.sd;
  if (!state.strengthTouched) {
    $("strength").value = String(maskActive() ? DEFAULT_STRENGTH.inpaint : DEFAULT_STRENGTH.img2img);
    updateStrengthLabel();
  }
}

/** Sets the strength slider (e.g. from a PNG's "Denoising strength"). */
export function setStrength(v) {
  if (!(v > 0 && v <= 1)) return;
  $("strength").value = String(v);
  state.strengthTouched = true;
  updateStrengthLabel();
}

/** Says in the panel whether the loaded model uses the image (PixArt does not). */
export function setImageNote(text) {
  $("image-note").textContent = text || "";
  $("image-note").hidden = !text;
}

function firstImage(files) {
  return [...(files || [])].find((f) => f.type.startsWith("image/")) || null;
}

/**
 * Wires the panel. onChange(info) is told when the init image changes (null when removed);
 * onError(message) when a dropped or pasted file is not an image.
 */
export function setUpImagePanel({ onChange = () => {}, onError = () => {} } = {}) {
  state.onChange = onChange;
  const use = (blob, name) => setInitImage(blob, name).catch((e) => onError(e.message));

  $("init-file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) use(f, f.name);
    e.target.value = "";
  });
  $("init-clear").addEventListener("click", clearInitImage);

  const zone = $("init-drop");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); // the page's own drop handler (PNG settings) leaves drops on this box alone
    zone.classList.remove("over");
    const f = firstImage(e.dataTransfer && e.dataTransfer.files);
    if (f) use(f, f.name);
    else onError("Drop an image file (PNG, JPEG, WebP) to use it as the init image.");
  });
  document.addEventListener("paste", (e) => {
    const items = [...((e.clipboardData && e.clipboardData.items) || [])];
    const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return; // text pastes go where they were going
    e.preventDefault();
    const f = item.getAsFile();
    if (f) use(f, f.name && f.name !== "image.png" ? f.name : "pasted image");
  });

  $("strength").addEventListener("input", () => {
    state.strengthTouched = true;
    updateStrengthLabel();
  });
  $("mask-on").addEventListener("change", () => {
    // diffusers' inpainting default strength is 1.0, img2img's 0.8
    if (!state.strengthTouched) $("strength").value = String(maskActive() ? DEFAULT_STRENGTH.inpaint : DEFAULT_STRENGTH.img2img);
    sync();
  });
  $("brush-size").addEventListener("input", () => ($("brush-size-value").textContent = $("brush-size").value));
  $("mask-clear").addEventListener("click", () => {
    fillMask("#000");
    updateMaskNote();
  });
  $("mask-invert").addEventListener("click", () => {
    const c = $("mask-canvas");
    const ctx = maskCtx();
    const img = ctx.getImageData(0, 0, c.width, c.height);
    invertMask(img.data);
    ctx.putImageData(img, 0, 0);
    updateMaskNote();
  });

  const canvas = $("mask-canvas");
  canvas.addEventListener("pointerdown", (e) => {
    if (!maskActive() || e.button !== 0) return;
    e.preventDefault();
    try {
      canvas.setPointerCapture(e.pointerId); // keep the stroke when the pointer leaves the canvas
    } catch {
      // a pointer the browser does not track (a synthetic event): paint without capture
    }
    state.painting = true;
    state.last = null;
    paint(pointOf(e));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (state.painting) paint(pointOf(e));
  });
  const end = () => {
    if (!state.painting) return;
    state.painting = false;
    state.last = null;
    updateMaskNote();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("strength").value = String(DEFAULT_STRENGTH.img2img);
  $("brush-size-value").textContent = $("brush-size").value;
  sync();
}
