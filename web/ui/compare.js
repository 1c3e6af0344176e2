// The Compare view's runs: a baseline with every speed-up off, then the chosen method(s).

import * as fmt from "./format.js";

/** The headings of the Compare view, by #compare-method choice. */
export const COMPARE_HEADINGS = {
  tgate: "T-GATE off / on",
  deepcache: "DeepCache off / on",
  both: "Off / T-GATE + DeepCache",
  all: "Off / T-GATE / DeepCache / both",
};

/** DeepCache's own defaults (horseee/DeepCache: cache_interval 3, cache_branch_id 0). */
const DEEPCACHE_DEFAULTS = { interval: 3, branch: 0 };

/**
 * The runs of a comparison, [{ opts, label, method }]: the baseline (T-GATE, DeepCache and adaptive
 * guidance off) and then, by choice, T-GATE ("tgate"), DeepCache ("deepcache"), both together
 * ("both") or all three ("all"). opts are the page's generate options; gateFields the T-GATE
 * fields (used as v2 when the form has T-GATE off); deepcache the form's DeepCache (or undefined:
 * DeepCache's defaults); kind the model family (PixArt has no DeepCache). Throws a "bad-request"
 * error for DeepCache on PixArt.
 */
export function compareRuns(opts, choice, { gateFields = {}, deepcache, kind = "sd" } = {}) {
  if (kind === "pixart" && choice !== "tgate") {
    throw Object.assign(new Error("DeepCache works on UNet models only; compare T-GATE with this model"), { code: "bad-request" });
  }
  // T-GATE as the form sets it; when the form has it off, v2 with the fields given (or the defaults).
  const on = opts.tgate && opts.tgate.mode !== "off" ? opts.tgate : { ...gateFields, mode: "v2" };
  // T-GATE off with the on run's gate step: the engine then measures the off run's
  // peakAfterGateBytes after the same step (an unset or "auto" gate step is the same default in both).
  const offGate = Number.isInteger(on.gateStep) ? { mode: "off", gateStep: on.gateStep } : { mode: "off" };
  const { deepcache: _dc, adaptiveGuidance: _ag, ...plain } = opts;
  const dc = opts.deepcache || deepcache || DEEPCACHE_DEFAULTS;
  const base = { opts: { ...plain, tgate: offGate }, label: choice === "tgate" ? "T-GATE off" : "off", method: "off" };
  const tgate = { opts: { ...plain, tgate: on }, label: `T-GATE ${fmt.tgate(on)}`, method: "T-GATE" };
  const deep = { opts: { ...plain, tgate: offGate, deepcache: dc }, label: `DeepCache ${dc.interval}/${dc.branch ?? 0}`, method: "DeepCache" };
  const both = { opts: { ...plain, tgate: on, deepcache: dc }, label: "T-GATE + DeepCache", method: "T-GATE + DeepCache" };
  switch (choice) {
    case "deepcache":
      return [base, deep];
    case "both":
      return [base, both];
    case "all":
      return [base, tgate, deep, both];
    default:
      return [base, tgate];
  }
}
