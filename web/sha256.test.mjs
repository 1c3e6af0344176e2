// node --test web/: the streaming SHA-256 against Node's crypto on inputs
// that cross block boundaries, fed in chunks of every awkward size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { SHA256 } from "./sha256.js";

test("sha256 matches node:crypto", () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100003]) {
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = (i * 131 + 7) & 255;
    const want = createHash("sha256").update(data).digest("hex");
    for (const chunk of [1, 3, 64, 65, 4096, n || 1]) {
      const h = new SHA256();
      for (let p = 0; p < n; p += chunk) h.update(data.subarray(p, p + chunk));
      assert.equal(h.hex(), want, `n=${n} chunk=${chunk}`);
    }
  }
});
