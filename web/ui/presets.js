// Model presets, each with the settings it works best with.
//
// settings: the sampling fields a preset fills; a field left out is cleared (= the model's or the
// engine's default). taesd: a TAESD decoder that fits the model's latents, loaded on request.

export const LOCAL_REPO = "tgate/tiny-sd";
const TAESD = "madebyollin/taesd";

export const PRESETS = [
  {
    id: "sd15",
    label: "Stable Diffusion 1.5",
    source: "stable-diffusion-v1-5/stable-diffusion-v1-5",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, scheduler: "dpm++2m", width: 512, height: 512 },
  },
  {
    id: "sd21-base",
    label: "Stable Diffusion 2.1 base",
    source: "stabilityai/stable-diffusion-2-1-base",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, width: 512, height: 512 },
  },
  {
    id: "sd-turbo",
    label: "SD-Turbo (1 step)",
    source: "stabilityai/sd-turbo",
    taesd: TAESD,
    // With one step and no guidance T-GATE has little to save; gate 1 is what it would use.
    settings: { steps: 1, guidance: 0, scheduler: "euler-a", timestepSpacing: "trailing", width: 512, height: 512, tgate: { mode: "off", gateStep: 1 } },
  },
  {
    id: "lcm-dreamshaper-v7",
    label: "LCM Dreamshaper v7 (4 steps)",
    source: "SimianLuo/LCM_Dreamshaper_v7",
    taesd: TAESD,
    settings: {
      steps: 4,
      guidance: 8,
      scheduler: "lcm",
      width: 512,
      height: 512,
      tgate: { mode: "v2", gateStep: 1, spInterval: 1, fiInterval: 1, warmUp: 0 },
    },
  },
  {
    id: "tiny-sd",
    label: "Segmind tiny-sd",
    source: "segmind/tiny-sd",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, width: 512, height: 512 },
  },
  {
    id: "bk-sdm-tiny",
    label: "BK-SDM tiny",
    source: "nota-ai/bk-sdm-tiny",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, width: 512, height: 512 },
  },
];

/** The preset for a model served by this page's own origin. */
export function localPreset(repo) {
  const known = PRESETS.find((p) => p.source.toLowerCase() === repo.toLowerCase());
  if (repo === LOCAL_REPO) {
    return { id: "local", label: "Tiny test model (local)", source: repo, local: true, settings: { steps: 10 } };
  }
  return {
    id: `local:${repo}`,
    label: `${known ? known.label : repo} (local)`,
    source: repo,
    local: true,
    settings: known ? known.settings : {},
  };
}

/**
 * The repos this origin serves itself, from GET /api/local-models. Accepts a JSON array of repo ids
 * or of objects with `id`/`repo`/`model`/`name`, or such an array under `models`. [] when absent.
 */
export async function fetchLocalModels(timeoutMs = 3000) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetch(new URL("/api/local-models", location.origin), { signal: ctl.signal, cache: "no-store" });
    if (!res.ok) return [];
    let list = await res.json();
    if (list && !Array.isArray(list)) list = list.models;
    if (!Array.isArray(list)) return [];
    return list
      .map((m) => (typeof m === "string" ? m : m && (m.id ?? m.repo ?? m.model ?? m.name)))
      .filter((m) => typeof m === "string" && m.includes("/"));
  } catch {
    return [];
  } finally {
    clearTimeout(timer);
  }
}

const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w./-]+)?$/;

/**
 * A model the user typed: a Hub repo id `owner/name[@rev]`, or a base URL of a diffusers folder
 * ending in `/` (absolute, or relative to this page). Returns { source } or { error }.
 */
export function parseCustomModel(text) {
  const v = text.trim();
  if (!v) return { error: "Type a Hub repo id (owner/name or owner/name@revision) or a folder URL ending in /." };
  if (REPO_RE.test(v)) return { source: v };
  if (v.endsWith("/")) {
    try {
      const url = new URL(v, location.href);
      if (url.protocol === "http:" || url.protocol === "https:") return { source: url.href };
    } catch {
      // falls through to the message below
    }
  }
  return {
    error: `"${v}" is neither a Hub repo id (owner/name or owner/name@revision) nor a folder URL ending in /.`,
  };
}
