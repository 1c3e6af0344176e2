// The LoRA list: files picked from disk (passed as blob: URLs that carry the file name) or
// URLs / Hub paths, each with a scale, removable. readLoras() gives engine.generate's loras.

import { fileURL, loraName } from "../options.js";
import { h } from "./results.js";

const $ = (id) => document.getElementById(id);

const HUB_FILE_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w./-]+)?\/.+\.safetensors$/i;

/** entries: { url, name, scale, local } in the order added; local ones own their blob: URL. */
let entries = [];
let onChange = () => {};

/**
 * Checks a typed LoRA location: an https (or http) URL, or a Hub path owner/name/file.safetensors.
 * Returns { url } or { error }.
 */
export function parseLoraLocation(text) {
  const v = text.trim();
  if (!v) return { error: "Type the URL of a .safetensors LoRA file or a Hub path owner/name/file.safetensors." };
  if (HUB_FILE_RE.test(v)) return { url: v };
  try {
    const u = new URL(v);
    if (u.protocol === "https:" || u.protocol === "http:") return { url: u.href };
  } catch {
    // falls through
  }
  return { error: `"${v}" is neither an https URL nor a Hub path owner/name/file.safetensors.` };
}

function render() {
  const list = $("lora-list");
  list.replaceChildren(
    ...entries.map((e, i) => {
      const id = `lora-scale-${i}`;
      const scale = h("input", { id, type: "number", step: "0.05", value: String(e.scale), class: "lora-scale", inputmode: "decimal" });
      scale.addEventListener("input", () => {
        const n = Number(scale.value);
        if (scale.value.trim() !== "" && Number.isFinite(n)) {
          e.scale = n;
          scale.removeAttribute("aria-invalid");
        } else {
          scale.setAttribute("aria-invalid", "true");
        }
      });
      const remove = h("button", { type: "button", class: "lora-remove", "aria-label": `Remove LoRA ${e.name}` }, "Remove");
      remove.addEventListener("click", () => removeLora(i));
      return h(
        "li",
        { class: "lora-item", dataset: e.missing ? { url: e.url, missing: "true" } : { url: e.url } },
        h("span", { class: "lora-name", title: e.local ? `${e.name} (from this computer)` : e.url }, e.name, e.missing ? " (pick the file again)" : ""),
        h("label", { for: id, class: "lora-scale-label" }, "scale"),
        scale,
        remove,
      );
    }),
  );
  $("lora-empty").hidden = entries.length > 0;
  onChange(entries.length);
}

/** Adds a LoRA by URL or Hub path (a string) or a picked File. */
export function addLora(src, scale = 1) {
  if (typeof src === "string") {
    entries.push({ url: src, name: loraName(src), scale, local: false });
  } else {
    entries.push({ url: fileURL(src), name: loraName(src.name || "lora"), scale, local: true });
  }
  render();
}

/** Removes the i-th LoRA (and frees its blob: URL). */
export function removeLora(i) {
  const [e] = entries.splice(i, 1);
  if (e && e.local) URL.revokeObjectURL(e.url.replace(/#.*$/, ""));
  render();
}

/** engine.generate's loras: [{ url, scale }], or undefined when the list is empty or only names files not picked again. */
export function readLoras() {
  const list = entries.filter((e) => !e.missing).map((e) => ({ url: e.url, scale: e.scale }));
  return list.length ? list : undefined;
}

/** The LoRAs as shown, for the page and tests: [{ url, name, scale, local, missing }]. */
export function loraEntries() {
  return entries.map((e) => ({ ...e }));
}

/**
 * Replaces the list with the LoRAs a PNG names ([{ name, scale }]): names that are URLs or Hub
 * paths are used as they are; a bare file name is listed as missing until it is picked again
 * (a picked file with the same name takes its place).
 */
export function fillLoras(list = []) {
  for (const e of entries) if (e.local) URL.revokeObjectURL(e.url.replace(/#.*$/, ""));
  entries = list.map(({ name, scale }) => {
    const loc = parseLoraLocation(name);
    return loc.url ? { url: loc.url, name: loraName(loc.url), scale, local: false } : { url: "", name, scale, local: false, missing: true };
  });
  render();
}

/** Wires the LoRA controls; changed(count) is told when the list changes. */
export function setUpLoras({ changed = () => {}, onError = () => {} } = {}) {
  onChange = changed;
  $("lora-file").addEventListener("change", (ev) => {
    for (const f of ev.target.files) {
      const missing = entries.findIndex((e) => e.missing && e.name === loraName(f.name));
      if (missing >= 0) {
        const scale = entries[missing].scale;
        entries.splice(missing, 1);
        addLora(f, scale);
      } else {
        addLora(f);
      }
    }
    ev.target.value = "";
  });
  const addTyped = () => {
    const loc = parseLoraLocation($("lora-url").value);
    if (loc.error) {
      $("lora-url").setAttribute("aria-invalid", "true");
      onError(loc.error);
      return;
    }
    $("lora-url").removeAttribute("aria-invalid");
    addLora(loc.url);
    $("lora-url").value = "";
  };
  $("lora-add").addEventListener("click", addTyped);
  $("lora-url").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      addTyped();
    }
  });
  render();
}
