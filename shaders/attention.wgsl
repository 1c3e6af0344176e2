// attention.wgsl: softmax(q·kᵀ·scale + bias)·v per head without storing the
// score matrix (FlashAttention's tiling with an online softmax, Dao et al.
// 2022, arXiv 2205.14135). One thread owns one query row: it keeps the
// running maximum m, the running sum l and the output accumulator, and
// rescales them by exp(m_old − m_new) whenever a tile of keys raises m.
// The workgroup's WG threads share each tile of BK keys and values, loaded
// once into workgroup memory. Head h uses channels [h·D, (h+1)·D).
// Rows of q, k, v and the accumulator are held as vec4s (zero-padded past
// D), so the dot products and the accumulation are vec4 fmas and private
// arrays are indexed a quarter as often (slow on software adapters).

struct AttnParams {
    base: vec4<u32>,
    nq: u32,
    nk: u32,
    heads: u32,
    d: u32,       // q/k head size (≤ MAXD)
    dv: u32,      // v head size (≤ MAXD)
    scale: f32,
    flags: u32,   // 1: add bias
    _p0: u32,
    bias_sb: u32, // bias stride per batch (0 when broadcast)
    bias_sh: u32, // bias stride per head (0 when broadcast)
    _p1: u32,
    _p2: u32,
}

override WG: u32 = 64u;
override DT_A: u32 = 0u; // q
override DT_B: u32 = 0u; // k
override DT_C: u32 = 0u; // v
override DT_D: u32 = 0u; // bias
const BK: u32 = 8u;
const MAXD: u32 = 256u;
const MAXD4: u32 = MAXD / 4u;

@group(0) @binding(0) var<uniform> P: AttnParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<u32>;
@group(0) @binding(3) var<storage, read> k: array<u32>;
@group(0) @binding(4) var<storage, read> v: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<u32>;

var<workgroup> Ks: array<vec4<f32>, BK * MAXD4>;
var<workgroup> Vs: array<vec4<f32>, BK * MAXD4>;

fn ld_q(i: u32) -> f32 { return decode(q[word_index(i, DT_A)], i, DT_A); }
fn ld_k(i: u32) -> f32 { return decode(k[word_index(i, DT_B)], i, DT_B); }
fn ld_v(i: u32) -> f32 { return decode(v[word_index(i, DT_C)], i, DT_C); }
fn ld_bias(i: u32) -> f32 { return decode(bias[word_index(i, DT_D)], i, DT_D); }

// q4, k4 and v4 read four channels from c of a row starting at base, zero
// past n channels.
fn q4(base: u32, c: u32, n: u32) -> vec4<f32> {
    return vec4<f32>(select(0.0, ld_q(base + c), c < n), select(0.0, ld_q(base + c + 1u), c + 1u < n),
                     select(0.0, ld_q(base + c + 2u), c + 2u < n), select(0.0, ld_q(base + c + 3u), c + 3u < n));
}
fn k4(base: u32, c: u32, n: u32) -> vec4<f32> {
    return vec4<f32>(select(0.0, ld_k(base + c), c < n), select(0.0, ld_k(base + c + 1u), c + 1u < n),
                     select(0.0, ld_k(base + c + 2u), c + 2u < n), select(0.0, ld_k(base + c + 3u), c + 3u < n));
}
fn v4(base: u32, c: u32, n: u32) -> vec4<f32> {
    return vec4<f32>(select(0.0, ld_v(base + c), c < n), select(0.0, ld_v(base + c + 1u), c + 1u < n),
                     select(0.0, ld_v(base + c + 2u), c + 2u < n), select(0.0, ld_v(base + c + 3u), c + 3u < n));
}

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let qi = (P.base.x + wid.x) * WG + li;
    let h = P.base.y + wid.y;
    let b = P.base.z + wid.z;
    let valid = qi < P.nq;
    let qrow = min(qi, P.nq - 1u);
    let hd = P.heads * P.d;
    let hdv = P.heads * P.dv;

    let d4 = (P.d + 3u) / 4u;
    let dv4 = (P.dv + 3u) / 4u;
    var qv: array<vec4<f32>, MAXD4>;
    var acc: array<vec4<f32>, MAXD4>;
    let qbase = (b * P.nq + qrow) * hd + h * P.d;
    for (var c = 0u; c < d4; c++) {
        qv[c] = q4(qbase, c * 4u, P.d) * P.scale;
    }
    var m = LOWEST;
    var l = 0.0;
    let brow = b * P.bias_sb + h * P.bias_sh + qrow * P.nk;

    for (var k0 = 0u; k0 < P.nk; k0 += BK) {
        let kn = min(BK, P.nk - k0);
        workgroupBarrier();
        for (var e = li; e < kn * d4; e += WG) {
            let j = e / d4;
            let c = e % d4;
            Ks[j * MAXD4 + c] = k4((b * P.nk + k0 + j) * hd + h * P.d, c * 4u, P.d);
        }
        for (var e = li; e < kn * dv4; e += WG) {
            let j = e / dv4;
            let c = e % dv4;
            Vs[j * MAXD4 + c] = v4((b * P.nk + k0 + j) * hdv + h * P.dv, c * 4u, P.dv);
        }
        workgroupBarrier();

        var s: array<f32, BK>;
        var mt = m;
        for (var j = 0u; j < kn; j++) {
            var dv = vec4<f32>(0.0);
            for (var c = 0u; c < d4; c++) {
                dv = fma(qv[c], Ks[j * MAXD4 + c], dv);
            }
            var dot = (dv.x + dv.y) + (dv.z + dv.w);
            if ((P.flags & 1u) != 0u) {
                dot += ld_bias(brow + k0 + j);
            }
            s[j] = dot;
            mt = max(mt, dot);
        }
        let corr = exp(m - mt);
        l *= corr;
        for (var c = 0u; c < dv4; c++) {
            acc[c] *= corr;
        }
        for (var j = 0u; j < kn; j++) {
            let p = exp(s[j] - mt);
            l += p;
            for (var c = 0u; c < dv4; c++) {
                acc[c] = fma(vec4<f32>(p), Vs[j * MAXD4 + c], acc[c]);
            }
        }
        m = mt;
    }
    if (valid) {
        let obase = (b * P.nq + qi) * hdv + h * P.dv;
        let inv = 1.0 / l;
        for (var c = 0u; c < dv4; c++) {
            let r = acc[c] * inv;
            let d = c * 4u;
            out[obase + d] = r.x;
            if (d + 1u < P.dv) { out[obase + d + 1u] = r.y; }
            if (d + 2u < P.dv) { out[obase + d + 2u] = r.z; }
            if (d + 3u < P.dv) { out[obase + d + 3u] = r.w; }
        }
    }
}
