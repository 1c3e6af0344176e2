// Engine errors in people's words, by EngineError.code.

const NO_WEBGPU =
  "This browser has no WebGPU, which the engine needs. Use Chrome or Edge 113 or later on Windows, " +
  "macOS or ChromeOS (Chrome 121+ on Android), Safari 26 or later, or Firefox 141 or later on Windows. " +
  "On Linux, start Chrome with --enable-unsafe-webgpu --enable-features=Vulkan (or turn on " +
  "chrome://flags/#enable-unsafe-webgpu). The page must be served over https or from localhost.";

/** { text, error } for an error thrown by the engine (or anything else). */
export function describeError(err) {
  const code = err && typeof err === "object" ? err.code : undefined;
  // the engine's own words, without a final full stop (they go inside a sentence here)
  const detail = (err && err.message ? String(err.message) : String(err)).replace(/\.\s*$/, "");
  switch (code) {
    case "no-webgpu":
      // tgate.js's own "no WebGPU" words repeat the above; an adapter or
      // device that failed to start says more.
      return { text: /^this browser has no WebGPU/i.test(detail) ? NO_WEBGPU : `${NO_WEBGPU} (${detail})`, error: true };
    case "adapter":
      return { text: `This GPU is too small for the engine: ${detail}.`, error: true };
    case "wont-fit":
      return { text: `${detail.charAt(0).toUpperCase()}${detail.slice(1)}.`, error: true };
    case "download":
      return {
        text: `A download failed: ${detail}. Check the connection and the model name, then try again; files already downloaded stay in the cache.`,
        error: true,
      };
    case "bad-model":
      return { text: `That is not a model the engine can use: ${detail}.`, error: true };
    case "quota":
      return {
        text: `The browser's storage is full: ${detail}. Delete cached models in "Downloaded models" below and try again.`,
        error: true,
      };
    case "device-lost":
      return { text: "The GPU device was lost; the engine restarted — try again, maybe with a smaller size.", error: true };
    case "cancelled":
      return { text: "Cancelled.", error: false };
    case "busy":
      return { text: "The engine is still busy with another image; wait for it or press Cancel.", error: true };
    case "bad-request":
      return { text: `A setting is not valid: ${detail}.`, error: true };
    case "internal":
      return { text: `The engine failed: ${detail}.`, error: true };
    case "unavailable":
      return { text: `${detail}.`, error: true };
    default:
      return { text: detail ? `${detail}.` : "Something went wrong.", error: true };
  }
}
