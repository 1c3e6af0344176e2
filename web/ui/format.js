// Numbers and settings in words for the page.

import { loraName } from "../options.js";

const nf1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

/** Bytes in MB (or GB from 10 GB up), decimal units as download sizes are usually given. */
export function bytes(n) {
  if (n == null || !Number.isFinite(n)) return "–";
  if (n >= 10e9) return `${nf1.format(n / 1e9)} GB`;
  if (n >= 10e6) return `${nf0.format(n / 1e6)} MB`;
  return `${nf1.format(n / 1e6)} MB`;
}

/** Milliseconds as "850 ms" or "12.3 s". */
export function ms(n) {
  if (n == null || !Number.isFinite(n)) return "–";
  if (n < 1000) return `${nf0.format(n)} ms`;
  return `${nf1.format(n / 1000)} s`;
}

/** A step's plan { cfg, cross, self } in words; booleans mean "computed", strings are shown as given. */
export function plan(p) {
  if (!p) return "";
  const word = (v, yes, no) => (typeof v === "boolean" ? (v ? yes : no) : String(v));
  const parts = [];
  if ("cfg" in p) parts.push(`cfg ${word(p.cfg, "on", "off")}`);
  if ("cross" in p) parts.push(`cross ${word(p.cross, "computed", "reused")}`);
  if ("self" in p) parts.push(`self ${word(p.self, "computed", "reused")}`);
  return parts.join(" / ");
}

/** T-GATE settings in a few words: "off", "v2 (gate 10, SP 5, FI 1, warm-up 2)". */
export function tgate(t) {
  if (!t || !t.mode || t.mode === "off") return "off";
  const parts = [];
  if (t.gateStep != null) parts.push(`gate ${t.gateStep}`);
  if (t.spInterval != null) parts.push(`SP ${t.spInterval}`);
  if (t.fiInterval != null) parts.push(`FI ${t.fiInterval}`);
  if (t.warmUp != null) parts.push(`warm-up ${t.warmUp}`);
  if (t.autoThreshold != null) parts.push(`threshold ${t.autoThreshold}`);
  return parts.length ? `${t.mode} (${parts.join(", ")})` : `${t.mode} (defaults)`;
}

/** LoRAs in a few words: "detail ×0.8, style ×1" ("" for none); a LoRA is { name } or { url }. */
export function loras(list) {
  if (!Array.isArray(list) || !list.length) return "";
  return list.map((l) => `${l.name || loraName(l.url || "")} ×${l.scale ?? 1}`).join(", ");
}

/** One line describing a finished image's settings. */
export function summary(s, modelName) {
  const parts = [];
  if (modelName) parts.push(modelName);
  if (s.steps != null) parts.push(`${s.steps} steps`);
  if (s.scheduler) parts.push(s.scheduler);
  if (s.timestepSpacing) parts.push(s.timestepSpacing);
  if (s.guidance != null) parts.push(`CFG ${s.guidance}`);
  if (s.guidanceRescale) parts.push(`rescale ${s.guidanceRescale}`);
  parts.push(`seed ${s.seed ?? 0}`);
  if (s.width && s.height) parts.push(`${s.width}×${s.height}`);
  parts.push(`T-GATE ${tgate(s.tgate)}`);
  if (s.deepcache) parts.push(`DeepCache ${s.deepcache.interval}/${s.deepcache.branch ?? 0}`);
  if (s.adaptiveGuidance) parts.push(`adaptive guidance ${s.adaptiveGuidance}`);
  if (s.strength != null) parts.push(`strength ${s.strength}`);
  if (s.loras && s.loras.length) parts.push(`LoRA ${loras(s.loras)}`);
  if (s.decoder && s.decoder !== "vae") parts.push(`decoder ${s.decoder}`);
  return parts.join(" · ");
}
