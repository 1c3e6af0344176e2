// The cache manager: models stored in this browser, their sizes, delete.

import * as fmt from "./format.js";
import { h } from "./results.js";

const $ = (id) => document.getElementById(id);

/**
 * Lists the stored models with listModels (tgate.js's listCachedModels, which needs no engine);
 * onDelete(model) is called by a row's delete button. Returns the list, or null when there is no
 * listModels (tgate.js could not be loaded).
 */
export async function renderCache(listModels, { onDelete, busy = false } = {}) {
  const body = $("cache-list");
  const total = $("cache-total");
  let estimate = null;
  try {
    estimate = navigator.storage && navigator.storage.estimate ? await navigator.storage.estimate() : null;
  } catch {
    estimate = null;
  }
  const quota = estimate && estimate.quota
    ? ` Browser storage for this site: ${fmt.bytes(estimate.usage)} used of ${fmt.bytes(estimate.quota)} allowed.`
    : "";

  if (typeof listModels !== "function") {
    body.replaceChildren(h("tr", {}, h("td", { colspan: "4", class: "muted" }, "The list needs tgate.js, which could not be loaded.")));
    total.textContent = quota.trim();
    return null;
  }

  const list = await listModels();
  const rows = list.map((m) =>
    h(
      "tr",
      { dataset: { model: m.model } },
      h("td", { class: "model-name" }, m.model),
      h("td", { class: "num" }, String(m.files ?? "–")),
      h("td", { class: "num" }, fmt.bytes(m.bytes)),
      h(
        "td",
        {},
        h(
          "button",
          {
            type: "button",
            class: "cache-delete",
            "aria-label": `Delete ${m.model} from this browser`,
            disabled: busy,
            onclick: () => onDelete(m.model),
          },
          "Delete",
        ),
      ),
    ),
  );
  body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: "4", class: "muted" }, "Nothing stored yet."))]));
  const sum = list.reduce((n, m) => n + (m.bytes || 0), 0);
  total.textContent = `${list.length} model${list.length === 1 ? "" : "s"}, ${fmt.bytes(sum)} in all.${quota}`;
  return list;
}

/** Enables or disables the delete buttons (no deleting while a model loads). */
export function setCacheBusy(busy) {
  for (const b of document.querySelectorAll("#cache-list .cache-delete")) b.disabled = busy;
}
