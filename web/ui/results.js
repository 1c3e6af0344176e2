// The result panel, the off/on comparison and the gallery.

import * as fmt from "./format.js";

const $ = (id) => document.getElementById(id);

/** Builds an element: h("p", { class: "x", dataset: {...} }, child, "text"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c);
  return el;
}

/** Fills a <dl> from [term, description] pairs (pairs with an empty description are skipped). */
export function facts(dl, pairs) {
  dl.replaceChildren();
  for (const [term, desc] of pairs) {
    if (desc === undefined || desc === null || desc === "") continue;
    dl.append(h("dt", {}, term), h("dd", {}, desc));
  }
  dl.hidden = dl.childElementCount === 0;
}

/** The object URL of a result's PNG, made once per result. */
export function pngURL(r) {
  if (!r._url && r.png) r._url = URL.createObjectURL(r.png);
  return r._url;
}

/** The options a result was made with: the engine's resolved settings over what was asked. */
export function settingsOf(r, asked = {}) {
  return { ...asked, ...(r.settings || {}) };
}

function gateStats(g) {
  if (!g || !g.mode || g.mode === "off") return "off";
  const parts = [`${g.mode}, gate step ${g.gateStep ?? "–"}`];
  if (g.crossComputed != null) parts.push(`cross-attention ${g.crossComputed} computed / ${g.crossReused ?? 0} reused`);
  if (g.selfComputed != null) parts.push(`self-attention ${g.selfComputed} computed / ${g.selfReused ?? 0} reused`);
  if (g.releasedAtStep != null && g.releasedAtStep > 0) parts.push(`cross-attention weights released at step ${g.releasedAtStep}`);
  return parts.join("; ");
}

function meanStep(t) {
  const s = t && t.stepMs;
  if (!Array.isArray(s) || !s.length) return undefined;
  return s.reduce((a, b) => a + b, 0) / s.length;
}

/** Shows a finished generate in the result panel. */
export function showResult(r, asked) {
  const img = $("result");
  const s = settingsOf(r, asked);
  if (r.png) {
    img.src = pngURL(r);
    img.alt = s.prompt ? `Generated image: ${s.prompt}` : "Generated image";
    img.hidden = false;
  } else {
    img.hidden = true;
  }
  $("result-empty").hidden = !!r.png;
  $("result-empty").textContent = r.png ? "" : "No image (decoder: none); the latents are in tgateApp.lastResult.latents.";

  const t = r.timings || {};
  const m = r.memory || {};
  const mean = meanStep(t);
  facts($("result-info"), [
    ["Time", fmt.ms(t.totalMs)],
    [
      "Phases",
      [
        t.tokenizeMs != null && `tokenize ${fmt.ms(t.tokenizeMs)}`,
        t.textEncoderMs != null && `text encoder ${fmt.ms(t.textEncoderMs)}`,
        t.denoiseMs != null && `denoise ${fmt.ms(t.denoiseMs)}${mean !== undefined ? ` (${fmt.ms(mean)} a step)` : ""}`,
        t.decodeMs != null && `decode ${fmt.ms(t.decodeMs)}`,
      ]
        .filter(Boolean)
        .join(" · "),
    ],
    [
      "GPU memory",
      m.peakBytes != null
        ? `peak ${fmt.bytes(m.peakBytes)}` + (m.peakAfterGateBytes != null ? ` · per-step peak after the gate ${fmt.bytes(m.peakAfterGateBytes)}` : "")
        : "",
    ],
    ["T-GATE", gateStats(r.gate)],
    ["Gate", asked && asked.tgate && asked.tgate.gateStep === "auto" ? (r.gateStep != null ? `auto: gated at step ${r.gateStep}` : "auto: never gated") : ""],
    ["DeepCache", s.deepcache ? `a full UNet every ${s.deepcache.interval} steps, branch ${s.deepcache.branch ?? 0}` : ""],
    [
      "Adaptive guidance",
      s.adaptiveGuidance ? (r.adaptiveGuidanceStep != null ? `guidance off from step ${r.adaptiveGuidanceStep} (γ̄ ${s.adaptiveGuidance})` : `never switched (γ̄ ${s.adaptiveGuidance})`) : "",
    ],
    ["Init image", asked && asked.initImage ? `strength ${s.strength ?? "default"}${asked.mask ? ", inpainting with the mask" : ""}` : ""],
    ["LoRA", fmt.loras(s.loras)],
    ["Size", r.width && r.height ? `${r.width}×${r.height}` : ""],
    ["Settings", fmt.summary(s)],
  ]);

  const ul = $("warnings");
  ul.replaceChildren(...(r.warnings || []).map((w) => h("li", {}, String(w))));
  ul.hidden = !ul.childElementCount;
}

/** The file name of a result's PNG: tgate-<seed>.png. */
export function fileName(r, asked) {
  return `tgate-${settingsOf(r, asked).seed ?? 0}.png`;
}

/**
 * Adds a finished image to the top of the gallery; onReuse(r) puts its settings back in the form,
 * onUseAsInit(r) sends the image back as the next init image.
 */
export function addToGallery(r, asked, modelName, onReuse, onUseAsInit) {
  const s = settingsOf(r, asked);
  const time = r.timings && r.timings.totalMs;
  const fig = h(
    "figure",
    { class: "gallery-item", dataset: { seed: String(s.seed ?? 0), mode: (s.tgate && s.tgate.mode) || "off" } },
    r.png ? h("img", { src: pngURL(r), alt: s.prompt || "Generated image", loading: "lazy", width: r.width, height: r.height }) : h("div", { class: "no-image" }, "latents only"),
    h(
      "figcaption",
      {},
      h("span", { class: "prompt" }, s.prompt || "(no prompt)"),
      h("span", { class: "small" }, `${fmt.summary(s, modelName)}${time != null ? ` · ${fmt.ms(time)}` : ""}`),
      h(
        "span",
        { class: "buttons" },
        r.png ? h("a", { href: pngURL(r), download: fileName(r, asked), class: "button" }, "Download PNG") : null,
        r.png ? h("button", { type: "button", class: "reuse", onclick: () => onReuse(r) }, "Reuse settings") : null,
        r.png && onUseAsInit ? h("button", { type: "button", class: "use-init", onclick: () => onUseAsInit(r) }, "Use as init image") : null,
      ),
    ),
  );
  const gallery = $("gallery");
  gallery.prepend(fig);
  $("gallery-empty").hidden = true;
  return fig;
}

function compareItem(r, asked, label, afterGate, method = "") {
  const m = { ...(r.memory || {}) };
  if (afterGate !== undefined) m.peakAfterGateBytes = afterGate;
  const t = r.timings || {};
  const mode = (r.gate && r.gate.mode) || (asked.tgate && asked.tgate.mode) || "off";
  return h(
    "figure",
    {
      class: "compare-item",
      dataset: {
        mode,
        method,
        timeMs: String(t.totalMs ?? ""),
        peakBytes: String(m.peakBytes ?? ""),
        peakAfterGateBytes: String(m.peakAfterGateBytes ?? ""),
      },
    },
    r.png ? h("img", { src: pngURL(r), alt: `${label}: ${asked.prompt || "generated image"}`, width: r.width, height: r.height }) : h("div", { class: "no-image" }, "latents only"),
    h(
      "figcaption",
      {},
      h("strong", {}, label),
      h("span", {}, `${fmt.ms(t.totalMs)} · GPU peak ${fmt.bytes(m.peakBytes)}`),
      h("span", {}, `per-step GPU peak after the gate ${fmt.bytes(m.peakAfterGateBytes)}`),
    ),
  );
}

function speedWords(a, b) {
  const speedup = a && b ? a / b : NaN;
  const words = Number.isFinite(speedup) ? (speedup >= 1 ? `${speedup.toFixed(2)}× faster` : `${(1 / speedup).toFixed(2)}× slower`) : "time not measured";
  return { speedup, words };
}

/**
 * Shows runs side by side, the first the baseline (every method off): runs are
 * [{ r, asked, label, method }]. Returns { speedup, text }: the last run's speed-up over the
 * baseline and a sentence for each run after it. offAfterGate, when given, is the baseline's
 * per-step peak after the gate step (when that is not the engine's default).
 */
export function showCompareRuns(runs, { heading, offAfterGate } = {}) {
  const view = $("compare-view");
  const grid = view.querySelector(".compare-grid");
  const [base, ...rest] = runs;
  grid.replaceChildren(
    compareItem(base.r, base.asked, base.label, offAfterGate, base.method),
    ...rest.map((x) => compareItem(x.r, x.asked, x.label, undefined, x.method)),
  );
  if (heading) $("compare-heading").textContent = heading;
  const a = base.r.timings && base.r.timings.totalMs;
  const ma = offAfterGate !== undefined ? offAfterGate : base.r.memory && base.r.memory.peakAfterGateBytes;
  let speedup = NaN;
  const lines = rest.map((x) => {
    const s = speedWords(a, x.r.timings && x.r.timings.totalMs);
    speedup = s.speedup;
    const mb = x.r.memory && x.r.memory.peakAfterGateBytes;
    return `${x.method}: ${s.words}, per-step GPU peak after the gate ${fmt.bytes(ma)} → ${fmt.bytes(mb)}`;
  });
  const text = lines.join("; ");
  $("speedup").textContent = text;
  view.hidden = false;
  return { speedup, text };
}

/** Shows a T-GATE off / on pair (showCompareRuns with two runs). */
export function showCompare(off, offAsked, on, onAsked, { offAfterGate } = {}) {
  return showCompareRuns(
    [
      { r: off, asked: offAsked, label: "T-GATE off", method: "off" },
      { r: on, asked: onAsked, label: `T-GATE ${fmt.tgate(settingsOf(on, onAsked).tgate)}`, method: "T-GATE" },
    ],
    { heading: "T-GATE off / on", offAfterGate },
  );
}

/** Shows what a load returned. */
export function showModelInfo(info) {
  const files = info.files || [];
  const cachedBytes = files.filter((f) => f.cached).reduce((n, f) => n + (f.bytes || 0), 0);
  const cachedCount = files.filter((f) => f.cached).length;
  const est = info.estimate || {};
  facts($("model-info"), [
    ["Model", info.source],
    ["Class", `${info.className ?? "?"}${info.kind ? ` (${info.kind})` : ""}`],
    ["Default size", info.defaultWidth && info.defaultHeight ? `${info.defaultWidth}×${info.defaultHeight}` : ""],
    ["Scheduler", info.scheduler],
    [
      "Download size",
      info.downloadBytes != null
        ? `${fmt.bytes(info.downloadBytes)}` + (files.length ? ` · ${cachedCount} of ${files.length} files were in the cache (${fmt.bytes(cachedBytes)})` : "")
        : "",
    ],
    [
      "Estimated GPU memory",
      est.peakBytes != null
        ? `${fmt.bytes(est.peakBytes)}` +
          (est.weightBytes != null ? ` (weights ${fmt.bytes(est.weightBytes)}, activations ${fmt.bytes(est.activationBytes)})` : "")
        : "",
    ],
    ["Decoders", [info.vae && "VAE", info.taesd && "TAESD"].filter(Boolean).join(", ") || "none loaded"],
  ]);
}
