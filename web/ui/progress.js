// The progress lines of a load (downloads) and of a generation (steps, previews).

import * as fmt from "./format.js";

const $ = (id) => document.getElementById(id);

/** A step's plan { cfg, cross, self } in words: "cfg on / cross cache / self compute". */
function planText(p) {
  return `cfg ${p.cfg ? "on" : "off"} / cross ${p.cross} / self ${p.self}`;
}

/** The onProgress of a load: the download bar and line; say(text) shows a phase in the status. */
export function downloadProgress(say) {
  const files = new Map();
  const bar = $("progress-download");
  const line = $("download-text");
  $("download").hidden = false;
  bar.value = 0;
  bar.max = 1;
  line.textContent = "Reading the model's configuration…";
  return (ev) => {
    if (ev.type === "download") {
      files.set(ev.file, ev);
      if (ev.total) {
        bar.max = ev.total;
        bar.value = Math.min(ev.bytes || 0, ev.total);
      } else {
        bar.removeAttribute("value"); // indeterminate
      }
      const done = [...files.values()].filter((f) => f.done).length;
      const where = ev.fromCache ? " (from cache)" : "";
      const amount = ev.total ? `${fmt.bytes(ev.bytes)} of ${fmt.bytes(ev.total)}` : fmt.bytes(ev.bytes);
      line.textContent = `${ev.file}: ${amount}${where} · ${done} of ${files.size} files done`;
    } else if (ev.type === "phase" && ev.start) {
      const words = { resolve: "Reading the model's configuration…", weights: "Moving the weights to the GPU…" };
      if (words[ev.phase]) say(words[ev.phase]);
    }
  };
}

/** The onProgress of a generation labelled label: the step bar, the step line and the preview. */
export function stepProgress(label) {
  const bar = $("progress-steps");
  const line = $("step-text");
  const preview = $("preview");
  bar.max = 1;
  bar.value = 0;
  line.textContent = `${label}: starting…`;
  const phaseWords = { tokenize: "reading the prompt", "text-encoder": "encoding the prompt", "vae-encode": "encoding the init image", denoise: "denoising", decode: "decoding the image" };
  return (ev) => {
    if (ev.type === "phase" && ev.start && phaseWords[ev.phase]) {
      line.textContent = `${label}: ${phaseWords[ev.phase]}…`;
    } else if (ev.type === "phase" && ev.total && ev.done != null) {
      // a long phase's own progress (the T5 encoder streamed block by block)
      bar.max = ev.total;
      bar.value = ev.done;
      line.textContent = `${label}: ${phaseWords[ev.phase] || ev.phase} (${ev.done} of ${ev.total})…`;
    } else if (ev.type === "step") {
      bar.max = ev.total || 1;
      bar.value = ev.step;
      const mem = ev.memory || {};
      const parts = [`${label}: step ${ev.step}/${ev.total}`];
      if (ev.timestep != null) parts.push(`timestep ${Math.round(ev.timestep * 100) / 100}`);
      if (ev.plan) parts.push(`plan: ${planText(ev.plan)}`);
      if (mem.liveBytes != null) parts.push(`GPU ${fmt.bytes(mem.liveBytes)} live, ${fmt.bytes(mem.peakBytes)} peak`);
      line.textContent = parts.join(" · ");
      if (ev.preview) {
        const old = preview.dataset.url;
        preview.dataset.url = URL.createObjectURL(ev.preview);
        preview.src = preview.dataset.url;
        preview.hidden = false;
        if (old) URL.revokeObjectURL(old);
      }
    }
  };
}
