// The model file store: downloads into the browser's Cache Storage, keyed
// by the file's resolve URL (never a redirect's), put there only once the
// whole file arrived and its size, and its sha256 where one is known,
// check out. A download cut halfway leaves no entry, so nothing cached is
// ever corrupt. Used by the engine's Worker; the Go engine calls these
// through globalThis.tgateStore.

import { SHA256 } from "./sha256.js";

export const CACHE_NAME = "tgate-models";

// StoreError carries a code the engine reports: "download" (network or
// HTTP failure, or a file that does not check out), "quota" (storage full).
export class StoreError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "StoreError";
    this.code = code;
  }
}

const hexSHA = /^[0-9a-f]{64}$/;

function etagSHA(resp) {
  const e = (resp.headers.get("x-linked-etag") || resp.headers.get("etag") || "").replace(/^W\//, "").replace(/"/g, "").toLowerCase();
  return hexSHA.test(e) ? e : "";
}

async function openCache() {
  if (!globalThis.caches) throw new StoreError("download", "this browser offers no Cache Storage (is the page served over http://localhost or https?)");
  return caches.open(CACHE_NAME);
}

async function request(url, init) {
  let resp;
  try {
    resp = await fetch(url, { redirect: "follow", referrerPolicy: "no-referrer", ...init });
  } catch (e) {
    throw new StoreError("download", `cannot reach ${url}: ${e.message || e} (offline, a wrong address, or the server does not allow this page: CORS)`);
  }
  return resp;
}

function httpError(url, resp) {
  const what = resp.status === 401 || resp.status === 403
    ? "access denied (a gated or private repository needs a token, which this page does not send)"
    : resp.status === 404 ? "not found" : resp.statusText || "failed";
  return new StoreError("download", `${url}: HTTP ${resp.status} ${what}`);
}

async function put(cache, url, blob, meta) {
  const headers = {
    "content-type": "application/octet-stream",
    "x-tgate-size": String(blob.size),
    "x-tgate-model": meta.model || "",
    "x-tgate-file": meta.file || "",
    "x-tgate-sha256": meta.sha256 || "",
    "x-tgate-stored": new Date().toISOString(),
  };
  try {
    await cache.put(url, new Response(blob, { headers }));
  } catch (e) {
    if (e && e.name === "QuotaExceededError") throw quotaError(url, meta, blob.size);
    throw new StoreError("download", `storing ${url}: ${e.message || e}`);
  }
}

// fetchSmall returns a small file (a config, a tokenizer file) as an
// ArrayBuffer, from the cache or the network (then cached), or null when
// the server says it does not exist (404).
export async function fetchSmall(url, meta = {}) {
  const cache = await openCache();
  const hit = await cache.match(url);
  if (hit) return hit.arrayBuffer();
  const resp = await request(url);
  if (resp.status === 404) return null;
  if (!resp.ok) throw httpError(url, resp);
  const blob = await resp.blob();
  await put(cache, url, blob, meta);
  return blob.arrayBuffer();
}

// fetchAPI returns the answer of a Hub model API address as an
// ArrayBuffer, or null when the Hub does not know the repository (404).
// Answers are not cached: a revision such as main moves.
export async function fetchAPI(url) {
  const resp = await request(url);
  if (resp.status === 404) return null;
  if (!resp.ok) throw httpError(url, resp);
  return resp.arrayBuffer();
}

// exists reports whether url names a file, from the cache or by asking
// the server (HEAD; a server without HEAD gets a one-byte Range GET).
export async function exists(url) {
  const cache = await openCache();
  if (await cache.match(url)) return true;
  let resp = await request(url, { method: "HEAD" });
  if (resp.status === 405 || resp.status === 501) resp = await request(url, { headers: { Range: "bytes=0-0" } });
  if (resp.status === 404 || resp.status === 410) return false;
  if (!resp.ok) throw httpError(url, resp);
  return true;
}

// fetchFile returns a (weight) file as a Blob, from the cache when stored
// there, else downloaded in a stream: progress(bytes, total, fromCache)
// reports it; meta.size and meta.sha256 (hex), where known, are checked
// before the file is stored. Reads of the returned Blob come from disk.
export async function fetchFile(url, meta = {}, progress = () => {}) {
  const cache = await openCache();
  const hit = await cache.match(url);
  if (hit) {
    const blob = await hit.blob();
    if (meta.size >= 0 && meta.size !== undefined && blob.size !== meta.size) {
      await cache.delete(url); // stale: the repository changed
    } else {
      progress(blob.size, blob.size, true);
      return blob;
    }
  }
  const resp = await request(url);
  if (!resp.ok) throw httpError(url, resp);
  const lenHeader = resp.headers.get("content-length");
  const encoded = resp.headers.get("content-encoding");
  let total = meta.size >= 0 ? meta.size : -1;
  if (total < 0 && lenHeader && !encoded) total = Number(lenHeader);
  const sha = (meta.sha256 || etagSHA(resp) || "").toLowerCase();
  const hasher = sha ? new SHA256() : null;
  let got = 0;
  // The body streams to disk under a temporary key while it is counted and
  // hashed, so a large file never sits whole in memory; it is copied to its
  // real key only once it checks out.
  const counted = resp.body.pipeThrough(new TransformStream({
    transform(chunk, ctl) {
      got += chunk.length;
      if (hasher) hasher.update(chunk);
      progress(got, total, false);
      ctl.enqueue(chunk);
    },
  }));
  const tmp = partialKey(url);
  try {
    await cache.put(tmp, new Response(counted, { headers: { "content-type": "application/octet-stream" } }));
  } catch (e) {
    await cache.delete(tmp).catch(() => {});
    if (e && e.name === "QuotaExceededError") throw quotaError(url, meta, total);
    throw new StoreError("download", `download of ${url} broke off after ${got} of ${total >= 0 ? total : "?"} bytes: ${e.message || e}; nothing was stored, try again`);
  }
  const fail = async (msg) => {
    await cache.delete(tmp);
    throw new StoreError("download", msg);
  };
  if (total >= 0 && got !== total) await fail(`download of ${url} ended after ${got} of ${total} bytes; nothing was stored, try again`);
  if (hasher) {
    const h = hasher.hex();
    if (h !== sha) await fail(`${url}: the downloaded bytes have sha256 ${h}, but the server says ${sha}; nothing was stored`);
  }
  const staged = await cache.match(tmp);
  await put(cache, url, await staged.blob(), { ...meta, sha256: sha });
  await cache.delete(tmp);
  const stored = await cache.match(url);
  return stored.blob();
}

// partialKey is where a download stays until it checks out.
function partialKey(url) {
  const u = new URL(url);
  u.searchParams.set("tgate-partial", "1");
  return u.href;
}

function quotaError(url, meta, bytes) {
  return new StoreError("quota", `browser storage is full: ${meta.file || url} (${bytes >= 0 ? bytes : "?"} bytes) could not be stored; delete models in the cache manager or free disk space`);
}

// dropPartials deletes downloads left unfinished by a closed tab.
export async function dropPartials() {
  const cache = await openCache();
  for (const req of await cache.keys()) {
    if (new URL(req.url).searchParams.has("tgate-partial")) await cache.delete(req);
  }
}

// list groups the stored files by model: [{ model, files, bytes }].
export async function list() {
  const cache = await openCache();
  const byModel = new Map();
  for (const req of await cache.keys()) {
    if (new URL(req.url).searchParams.has("tgate-partial")) continue;
    const resp = await cache.match(req);
    const model = (resp && resp.headers.get("x-tgate-model")) || new URL(req.url).origin;
    const size = Number((resp && resp.headers.get("x-tgate-size")) || 0);
    const m = byModel.get(model) || { model, files: 0, bytes: 0 };
    m.files++;
    m.bytes += size;
    byModel.set(model, m);
  }
  return [...byModel.values()].sort((a, b) => a.model.localeCompare(b.model));
}

// remove deletes every stored file of a model; it returns how many.
export async function remove(model) {
  const cache = await openCache();
  let n = 0;
  for (const req of await cache.keys()) {
    const resp = await cache.match(req);
    if (resp && resp.headers.get("x-tgate-model") === model) {
      await cache.delete(req);
      n++;
    }
  }
  return n;
}

// has reports whether url is stored.
export async function has(url) {
  const cache = await openCache();
  return !!(await cache.match(url));
}
