// The kernel comparison page of `make bench-kernels`: runs each case of
// /cases.json on our WebGPU kernels (the Go engine compiled to wasm,
// globalThis.tgateBench), TensorFlow.js's WebGPU backend and ONNX Runtime
// Web's WebGPU execution provider, all in this page on the same adapter.
// Inputs are uploaded once per case; every timed rep runs the op and reads
// the output back to a Float32Array; warm-up reps first, then timed rounds
// in which the engines take turns in a rotating order. The last output of
// each engine (in our NCHW layout) and the times go back to the host,
// which checks them against its float64 reference.
import * as ort from '/npm/onnxruntime-web/dist/ort.webgpu.min.mjs';

const tf = globalThis.tf;
const log = (...a) => console.log(a.join(' '));

async function post(path, body) {
  const r = await fetch(path, { method: 'POST', body });
  if (!r.ok) throw new Error(`POST ${path}: ${r.status}`);
}

// NCHW ↔ NHWC for one image, and OIHW → HWIO for a conv filter (TF.js's layouts).
function nchwToNhwc(x, c, h, w) {
  const y = new Float32Array(x.length);
  for (let ci = 0; ci < c; ci++) for (let p = 0; p < h * w; p++) y[p * c + ci] = x[ci * h * w + p];
  return y;
}
function nhwcToNchw(x, c, h, w) {
  const y = new Float32Array(x.length);
  for (let ci = 0; ci < c; ci++) for (let p = 0; p < h * w; p++) y[ci * h * w + p] = x[p * c + ci];
  return y;
}
function oihwToHwio(x, o, i, kh, kw) {
  const y = new Float32Array(x.length);
  for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let r = 0; r < kh * kw; r++)
    y[(r * i + b) * o + a] = x[(a * i + b) * kh * kw + r];
  return y;
}

// Our kernels, through the Go engine.
const ours = {
  name: 'ours',
  async setup(c, inputs) {
    await tgateBench.setup(c.kind, { heads: c.heads || 0, groups: c.groups || 0, eps: c.eps || 0 },
      c.inputs.map((t) => ({ name: t.name, shape: t.shape, data: inputs[t.name] })));
  },
  run: () => tgateBench.run(),
  toOurs: (y) => y,
  async teardown() { await tgateBench.teardown(); },
};

// TensorFlow.js: its fused matMul and conv2d (bias in the epilogue), NHWC
// for the conv, attention and group norm from its ops.
const tfjs = {
  name: 'tfjs',
  async setup(c, inputs) {
    const t = {};
    const shape = Object.fromEntries(c.inputs.map((s) => [s.name, s.shape]));
    if (c.kind === 'conv') {
      const [, ci, h, w] = shape.x;
      const [co] = shape.w;
      t.x = tf.tensor4d(nchwToNhwc(inputs.x, ci, h, w), [1, h, w, ci]);
      t.w = tf.tensor4d(oihwToHwio(inputs.w, co, ci, 3, 3), [3, 3, ci, co]);
      t.b = tf.tensor1d(inputs.b);
      this.toOurs = (y) => nhwcToNchw(y, co, h, w);
      this.fn = () => tf.fused.conv2d({ x: t.x, filter: t.w, strides: 1, pad: 'same', bias: t.b });
    } else {
      for (const s of c.inputs) t[s.name] = tf.tensor(inputs[s.name], s.shape);
      this.toOurs = (y) => y;
      if (c.kind === 'linear') {
        this.fn = () => tf.fused.matMul({ a: t.x, b: t.w, transposeB: true, bias: t.b });
      } else if (c.kind === 'attention') {
        const [, s, dm] = shape.q, l = shape.k[1], h = c.heads, d = dm / h;
        const split = (x, n) => tf.transpose(tf.reshape(x, [n, h, d]), [1, 0, 2]);
        this.fn = () => {
          const q = split(t.q, s), k = split(t.k, l), v = split(t.v, l);
          const p = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)));
          return tf.reshape(tf.transpose(tf.matMul(p, v), [1, 0, 2]), [1, s, dm]);
        };
      } else if (c.kind === 'groupnorm') {
        const [, ch, hh, ww] = shape.x;
        const g = tf.reshape(t.gamma, [ch, 1, 1]), b = tf.reshape(t.beta, [ch, 1, 1]);
        t.g = g; t.b2 = b;
        this.fn = () => {
          const xg = tf.reshape(t.x, [c.groups, -1]);
          const { mean, variance } = tf.moments(xg, 1, true);
          const n = tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, c.eps)));
          const y = tf.add(tf.mul(tf.reshape(n, [1, ch, hh, ww]), g), b);
          return tf.mul(y, tf.sigmoid(y));
        };
      }
    }
    this.t = t;
  },
  async run() {
    const y = tf.tidy(this.fn);
    const d = await y.data();
    y.dispose();
    return d;
  },
  async teardown() { for (const x of Object.values(this.t || {})) x.dispose(); this.t = null; },
};

// ONNX Runtime Web on the case's model (`variant` picks the
// MatMul+Softmax+MatMul or the fused MultiHeadAttention graph) with the
// execution provider `ep`. On WebGPU the inputs are GPU buffers on ORT's
// device, so a run uploads nothing; outputs come back to the CPU. The
// 'wasm' EP (ORT's CPU kernels) runs only as a correctness check of the
// fused graph.
function ortEngine(name, variant, ep) {
  return {
    name,
    async setup(c, inputs) {
      const model = new Uint8Array(await (await fetch(`/model/${c.name}/${variant}.onnx`)).arrayBuffer());
      this.session = await ort.InferenceSession.create(model, { executionProviders: [ep], graphOptimizationLevel: 'all' });
      let device = null;
      if (ep === 'webgpu') {
        try { device = await ort.env.webgpu.device; } catch (_) { device = null; }
        if (!device) log(`  ${name}: ort.env.webgpu.device unavailable; inputs are uploaded by every run`);
      }
      this.feeds = {};
      this.buffers = [];
      for (const s of c.inputs) {
        if (s.weight) continue;
        const data = inputs[s.name];
        if (!device) { this.feeds[s.name] = new ort.Tensor('float32', data, s.shape); continue; }
        const buf = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
        device.queue.writeBuffer(buf, 0, data);
        this.buffers.push(buf);
        this.feeds[s.name] = ort.Tensor.fromGpuBuffer(buf, { dataType: 'float32', dims: s.shape });
      }
    },
    async run() {
      const out = await this.session.run(this.feeds);
      const y = out.y;
      const d = await y.getData();
      y.dispose();
      return d;
    },
    toOurs: (y) => y,
    async teardown() {
      if (this.session) await this.session.release();
      for (const b of this.buffers || []) b.destroy();
      this.session = null;
    },
  };
}

const message = (e) => String(e && e.message ? e.message : e).split('\n')[0].slice(0, 300);

async function runCase(c, cfg, engines) {
  const inputs = {};
  for (const s of c.inputs) inputs[s.name] = new Float32Array(await (await fetch(`/data/${c.name}/${s.name}`)).arrayBuffer());
  const active = [], errors = {}, times = {}, last = {};
  for (const name of c.engines) {
    const e = engines[name];
    try {
      await e.setup(c, inputs);
      for (let i = 0; i < cfg.warmup; i++) last[name] = await e.run();
      active.push(e);
      times[name] = [];
    } catch (err) {
      errors[name] = message(err);
      log(`  ${name}: setup or warm-up failed: ${errors[name]}`);
      try { await e.teardown(); } catch (_) { /* already reported */ }
    }
  }
  for (let r = 0; r < cfg.reps; r++) {
    const order = active.map((_, i) => active[(i + r) % active.length]);
    for (const e of order) {
      if (errors[e.name]) continue;
      try {
        const t0 = performance.now();
        const y = await e.run();
        times[e.name].push(performance.now() - t0);
        last[e.name] = y;
      } catch (err) {
        errors[e.name] = message(err);
        log(`  ${e.name}: run failed: ${errors[e.name]}`);
      }
    }
  }
  for (const e of active) {
    if (!errors[e.name] && last[e.name]) await post(`/result/${c.name}/${e.name}`, e.toOurs(last[e.name]));
    await e.teardown();
  }
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[s.length >> 1] : NaN; };
  log(`${c.name}: ` + Object.entries(times).map(([k, v]) => `${k} ${med(v).toFixed(1)} ms`).join(', '));
  await post(`/timing/${c.name}`, JSON.stringify({ times, errors }));
}

async function main() {
  const cfg = await (await fetch('/cases.json')).json();
  const adapter = await navigator.gpu.requestAdapter();
  const info = adapter ? adapter.info : {};
  const page = { userAgent: navigator.userAgent, adapter: `vendor="${info.vendor}" architecture="${info.architecture}" device="${info.device || ''}"` };

  const go = new Go();
  const { instance } = await WebAssembly.instantiateStreaming(fetch('/engine.wasm'), go.importObject);
  go.run(instance);
  page.ours = await tgateBench.init();

  // TF.js makes its device only when a case runs it.
  if (cfg.cases.some((c) => c.engines.includes('tfjs'))) {
    await tf.setBackend('webgpu');
    await tf.ready();
    page.tfjs = `${tf.version_core} backend ${tf.getBackend()}`;
  }

  ort.env.wasm.wasmPaths = '/npm/onnxruntime-web/dist/';
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  page.ort = ort.env.versions ? ort.env.versions.web : '';
  log(`adapter: ${page.adapter}; ours ${page.ours}; tfjs ${page.tfjs}; ort ${page.ort}`);

  const engines = {
    ours, tfjs,
    ort: ortEngine('ort', 'ort', 'webgpu'),
    'ort-mha': ortEngine('ort-mha', 'ort-mha', 'webgpu'),
    'ort-mha-cpu': ortEngine('ort-mha-cpu', 'ort-mha', 'wasm'),
  };
  for (const c of cfg.cases) {
    log(`${c.name}: ${c.desc}`);
    await runCase(c, cfg, engines);
  }
  await post('/done', JSON.stringify(page));
}

main().catch((e) => post('/done', JSON.stringify({ error: String(e && e.stack ? e.stack : e) })));
