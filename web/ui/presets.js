// Model presets, each with the settings it works best with.
//
// settings: the sampling fields a preset fills; a field left out is cleared (= the model's or the
// engine's default). taesd: a TAESD decoder that fits the model's latents, loaded on request
// (TAESDXL for SD-XL; PixArt uses the SD VAE's latents, so plain TAESD). kind: the model family
// ("sd", "lcm", "sdxl", "pixart"), which decides the fields the page shows before the model is
// loaded (afterwards the loaded model's own kind decides). note: shown under the model choice.
//
// T-GATE settings are the T-GATE repository's for each family: SD-XL gate 10, SP 5, FI 1,
// warm-up 2 at 25 steps; PixArt gate 15, SP 3, FI 1, warm-up 2 at 25 steps; LCM gate 1, SP 1,
// FI 1, warm-up 0.

export const LOCAL_REPO = "tgate/tiny-sd";
const TAESD = "madebyollin/taesd";
const TAESDXL = "madebyollin/taesdxl";

/** The config repo a single-file checkpoint uses unless the page is told another. */
export const DEFAULT_CHECKPOINT_CONFIG = "stable-diffusion-v1-5/stable-diffusion-v1-5";

const LCM_GATE = { mode: "v2", gateStep: 1, spInterval: 1, fiInterval: 1, warmUp: 0 };
const SDXL_GATE = { mode: "v2", gateStep: 10, spInterval: 5, fiInterval: 1, warmUp: 2 };
const PIXART_GATE = { mode: "v2", gateStep: 15, spInterval: 3, fiInterval: 1, warmUp: 2 };

export const PRESETS = [
  {
    id: "sd15",
    label: "Stable Diffusion 1.5",
    source: "stable-diffusion-v1-5/stable-diffusion-v1-5",
    kind: "sd",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, scheduler: "dpm++2m", width: 512, height: 512 },
  },
  {
    id: "sd21-base",
    label: "Stable Diffusion 2.1 base",
    source: "stabilityai/stable-diffusion-2-1-base",
    kind: "sd",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, width: 512, height: 512 },
  },
  {
    id: "sd-turbo",
    label: "SD-Turbo (1 step)",
    source: "stabilityai/sd-turbo",
    kind: "sd",
    taesd: TAESD,
    // With one step and no guidance T-GATE has little to save; gate 1 is what it would use.
    settings: { steps: 1, guidance: 0, scheduler: "euler-a", timestepSpacing: "trailing", width: 512, height: 512, tgate: { mode: "off", gateStep: 1 } },
  },
  {
    id: "lcm-dreamshaper-v7",
    label: "LCM Dreamshaper v7 (4 steps)",
    source: "SimianLuo/LCM_Dreamshaper_v7",
    kind: "lcm",
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
    kind: "sd",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, width: 512, height: 512 },
  },
  {
    id: "bk-sdm-tiny",
    label: "BK-SDM tiny",
    source: "nota-ai/bk-sdm-tiny",
    kind: "sd",
    taesd: TAESD,
    settings: { steps: 25, guidance: 7.5, width: 512, height: 512 },
  },
  {
    id: "sdxl-base",
    label: "SD-XL base 1.0",
    source: "stabilityai/stable-diffusion-xl-base-1.0",
    kind: "sdxl",
    taesd: TAESDXL,
    settings: { steps: 25, guidance: 5, scheduler: "euler", width: 1024, height: 1024, tgate: SDXL_GATE },
  },
  {
    id: "sdxl-turbo",
    label: "SDXL-Turbo (1 step)",
    source: "stabilityai/sdxl-turbo",
    kind: "sdxl",
    taesd: TAESDXL,
    // One step without guidance: T-GATE has nothing to gate.
    settings: { steps: 1, guidance: 0, scheduler: "euler-a", timestepSpacing: "trailing", width: 512, height: 512, tgate: { mode: "off", gateStep: 1 } },
  },
  {
    id: "ssd-1b",
    label: "SSD-1B (distilled SD-XL)",
    source: "segmind/SSD-1B",
    kind: "sdxl",
    taesd: TAESDXL,
    settings: { steps: 25, guidance: 7.5, scheduler: "euler", width: 1024, height: 1024, tgate: SDXL_GATE },
  },
  {
    id: "lcm-sdxl",
    label: "LCM-SDXL (4 steps)",
    // latent-consistency/lcm-sdxl holds the distilled UNet alone (unet/ and no model_index.json),
    // and the page loads whole pipeline folders: Vargol/lcm_sdxl_full_model is SD-XL base 1.0
    // with that UNet and the LCM scheduler, as one folder.
    source: "Vargol/lcm_sdxl_full_model",
    kind: "sdxl",
    taesd: TAESDXL,
    note: "latent-consistency/lcm-sdxl is a UNet alone, which this page cannot load by itself; this is SD-XL base with that UNet (Vargol/lcm_sdxl_full_model).",
    settings: { steps: 4, guidance: 8, scheduler: "lcm", width: 1024, height: 1024, tgate: LCM_GATE },
  },
  {
    id: "pixart-alpha-512",
    label: "PixArt-α 512",
    source: "PixArt-alpha/PixArt-XL-2-512x512",
    kind: "pixart",
    taesd: TAESD,
    settings: { steps: 25, guidance: 4.5, scheduler: "dpm++2m", width: 512, height: 512, tgate: PIXART_GATE },
  },
  {
    id: "pixart-alpha-1024",
    label: "PixArt-α 1024",
    source: "PixArt-alpha/PixArt-XL-2-1024-MS",
    kind: "pixart",
    taesd: TAESD,
    settings: { steps: 25, guidance: 4.5, scheduler: "dpm++2m", width: 1024, height: 1024, tgate: PIXART_GATE },
  },
  // PixArt-Σ 512 (PixArt-alpha/PixArt-Sigma-XL-2-512-MS) holds transformer/ alone, with no
  // model_index.json, text encoder or VAE: not a folder the page can load, so it has no preset
  // (a full folder made of it and PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers loads as "Other…").
  {
    id: "pixart-sigma-1024",
    label: "PixArt-Σ 1024",
    source: "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
    kind: "pixart",
    // PixArt-Σ decodes with the SD-XL VAE.
    taesd: TAESDXL,
    settings: { steps: 25, guidance: 4.5, scheduler: "dpm++2m", width: 1024, height: 1024, tgate: PIXART_GATE },
  },
  {
    id: "pixart-lcm",
    label: "LCM-PixArt (4 steps)",
    source: "PixArt-alpha/PixArt-LCM-XL-2-1024-MS",
    kind: "pixart",
    taesd: TAESD,
    settings: { steps: 4, guidance: 0, scheduler: "lcm", width: 1024, height: 1024, tgate: LCM_GATE },
  },
];

/** The preset for a model served by this page's own origin. */
export function localPreset(repo) {
  const known = PRESETS.find((p) => p.source.toLowerCase() === repo.toLowerCase());
  if (repo === LOCAL_REPO) {
    return { id: "local", label: "Tiny test model (local)", source: repo, local: true, kind: "sd", settings: { steps: 10 } };
  }
  return {
    id: `local:${repo}`,
    label: `${known ? known.label : repo} (local)`,
    source: repo,
    local: true,
    kind: known ? known.kind : undefined,
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
