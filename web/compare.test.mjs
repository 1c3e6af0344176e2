// node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { compareRuns } from "./ui/compare.js";

const opts = { prompt: "a fox", steps: 20, tgate: { mode: "v2", gateStep: 8 }, deepcache: { interval: 2, branch: 1 }, adaptiveGuidance: 0.999 };

const shape = (runs) => runs.map((r) => ({ method: r.method, tgate: r.opts.tgate, deepcache: r.opts.deepcache ?? null, ag: r.opts.adaptiveGuidance ?? null }));

test("every comparison starts from a baseline with every speed-up off", () => {
  for (const choice of ["tgate", "deepcache", "both", "all"]) {
    const [base] = compareRuns(opts, choice);
    assert.deepEqual(shape([base]), [{ method: "off", tgate: { mode: "off", gateStep: 8 }, deepcache: null, ag: null }], choice);
    assert.equal(base.opts.prompt, "a fox");
  }
});

test("all: off, T-GATE, DeepCache, both", () => {
  assert.deepEqual(shape(compareRuns(opts, "all")).slice(1), [
    { method: "T-GATE", tgate: { mode: "v2", gateStep: 8 }, deepcache: null, ag: null },
    { method: "DeepCache", tgate: { mode: "off", gateStep: 8 }, deepcache: { interval: 2, branch: 1 }, ag: null },
    { method: "T-GATE + DeepCache", tgate: { mode: "v2", gateStep: 8 }, deepcache: { interval: 2, branch: 1 }, ag: null },
  ]);
});

test("T-GATE off in the form: v2 with the fields; no DeepCache in the form: its defaults", () => {
  const plain = { prompt: "x", tgate: { mode: "off" } };
  const runs = compareRuns(plain, "both", { gateFields: { gateStep: 5, spInterval: 2 } });
  assert.deepEqual(shape(runs), [
    { method: "off", tgate: { mode: "off", gateStep: 5 }, deepcache: null, ag: null },
    { method: "T-GATE + DeepCache", tgate: { mode: "v2", gateStep: 5, spInterval: 2 }, deepcache: { interval: 3, branch: 0 }, ag: null },
  ]);
  // an auto gate has no step to measure the baseline after
  const auto = compareRuns({ prompt: "x", tgate: { mode: "v2", gateStep: "auto" } }, "tgate");
  assert.deepEqual(auto[0].opts.tgate, { mode: "off" });
  assert.equal(auto[0].label, "T-GATE off");
});

test("PixArt has no DeepCache to compare", () => {
  assert.throws(() => compareRuns(opts, "deepcache", { kind: "pixart" }), (e) => e.code === "bad-request" && /UNet models only/.test(e.message));
  assert.equal(compareRuns(opts, "tgate", { kind: "pixart" }).length, 2);
});
