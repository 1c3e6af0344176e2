// attention.wgsl: softmax(q·kᵀ·scale + bias)·v per head without storing the
// score matrix (FlashAttention's tiling with an online softmax, Dao et al.
// 2022, arXiv 2205.14135). One thread owns one query row: it keeps the
// running maximum m, the running sum l and the output accumulator, and
// rescales them by exp(m_old − m_new) whenever a tile of keys raises m.
// The workgroup's WG threads share each tile of BK keys and values, loaded
// once into workgroup memory. Head h uses channels [h·D, (h+1)·D).

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

@group(0) @binding(0) var<uniform> P: AttnParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<u32>;
@group(0) @binding(3) var<storage, read> k: array<u32>;
@group(0) @binding(4) var<storage, read> v: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<u32>;

var<workgroup> Ks: array<f32, BK * MAXD>;
var<workgroup> Vs: array<f32, BK * MAXD>;

fn ld_q(i: u32) -> f32 { return decode(q[word_index(i, DT_A)], i, DT_A); }
fn ld_k(i: u32) -> f32 { return decode(k[word_index(i, DT_B)], i, DT_B); }
fn ld_v(i: u32) -> f32 { return decode(v[word_index(i, DT_C)], i, DT_C); }
fn ld_bias(i: u32) -> f32 { return decode(bias[word_index(i, DT_D)], i, DT_D); }

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let qi = (P.base.x + wid.x) * WG + li;
    let h = P.base.y + wid.y;
    let b = P.base.z + wid.z;
    let valid = qi < P.nq;
    let qrow = min(qi, P.nq - 1u);
    let hd = P.heads * P.d;
    let hdv = P.heads * P.dv;

    var qv: array<f32, MAXD>;
    var acc: array<f32, MAXD>;
    let qbase = (b * P.nq + qrow) * hd + h * P.d;
    for (var d = 0u; d < P.d; d++) {
        qv[d] = ld_q(qbase + d) * P.scale;
    }
    var m = LOWEST;
    var l = 0.0;
    let brow = b * P.bias_sb + h * P.bias_sh + qrow * P.nk;

    for (var k0 = 0u; k0 < P.nk; k0 += BK) {
        let kn = min(BK, P.nk - k0);
        workgroupBarrier();
        for (var e = li; e < kn * P.d; e += WG) {
            let j = e / P.d;
            let d = e % P.d;
            Ks[j * MAXD + d] = ld_k((b * P.nk + k0 + j) * hd + h * P.d + d);
        }
        for (var e = li; e < kn * P.dv; e += WG) {
            let j = e / P.dv;
            let d = e % P.dv;
            Vs[j * MAXD + d] = ld_v((b * P.nk + k0 + j) * hdv + h * P.dv + d);
        }
        workgroupBarrier();

        var s: array<f32, BK>;
        var mt = m;
        for (var j = 0u; j < kn; j++) {
            var dot = 0.0;
            for (var d = 0u; d < P.d; d++) {
                dot = fma(qv[d], Ks[j * MAXD + d], dot);
            }
            if ((P.flags & 1u) != 0u) {
                dot += ld_bias(brow + k0 + j);
            }
            s[j] = dot;
            mt = max(mt, dot);
        }
        let corr = exp(m - mt);
        l *= corr;
        for (var d = 0u; d < P.dv; d++) {
            acc[d] *= corr;
        }
        for (var j = 0u; j < kn; j++) {
            let p = exp(s[j] - mt);
            l += p;
            for (var d = 0u; d < P.dv; d++) {
                acc[d] = fma(p, Vs[j * MAXD + d], acc[d]);
            }
        }
        m = mt;
    }
    if (valid) {
        let obase = (b * P.nq + qi) * hdv + h * P.dv;
        let inv = 1.0 / l;
        for (var d = 0u; d < P.dv; d++) {
            out[obase + d] = acc[d] * inv;
        }
    }
}
