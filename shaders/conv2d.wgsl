// conv2d.wgsl: 2-D convolution as an implicit GEMM. For batch b,
// out[co, p] = Σ_k W[co, k] · X̂[k, p] (+ bias[co]) with p = oy·OW + ox and
// k = (ci·KH + ky)·KW + kx, where X̂ (im2col of x) is never stored: the
// tile loader reads x[b, ci, oy·s − pad + ky, ox·s − pad + kx], zero outside.
// The weight [Cout, Cin, KH, KW] is already the row-major [Cout, K] matrix.
// Tiling as in matmul.wgsl (8×8 outputs per thread in sixteen vec4
// accumulators, vec4 shared tiles); the filter (and bias) may be f32, f16
// or bf16, and the filter also i8 quantised per output channel (its
// element (co, k) is wscale[co] times the stored integer). The tile loader fills a vec4 of four consecutive output
// positions at one k, so the im2col index arithmetic (integer divisions,
// slow on software adapters) is done once per vec4, not per element.
//
// A dispatch computes output channels [co0, co0+co_n) of one band and sums
// input channels [ci0, ci0+ci_n) only; with flag 2 it adds that partial
// sum to what out already holds, so a convolution whose tensors exceed a
// storage binding runs as several dispatches over channel windows. x, wt
// and out may be bound from an element offset (x_off, w_off, out_off) that
// every index is reduced by.

struct ConvParams {
    base: vec4<u32>,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    flags: u32, // 1: add bias[Cout], 2: accumulate into out
    _pad: u32,
    x_off: u32,   // element index of x where its binding starts
    w_off: u32,   // element index of the filter where its binding starts
    out_off: u32, // element index of out where its binding starts
    batch: u32,   // first batch of this dispatch (added to base.z)
    co0: u32,     // first output channel of the band
    co_n: u32,    // output channels in the band
    ci0: u32,     // first input channel summed
    ci_n: u32,    // input channels summed
}

override WG: u32 = 8u;
override TK: u32 = 16u;
override DT_A: u32 = 0u; // filter
override DT_B: u32 = 0u; // input
override DT_C: u32 = 0u; // bias
const TV: u32 = 8u; // outputs per thread along each side (two vec4s)

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;
@group(0) @binding(5) var<storage, read> wscale: array<f32>; // per output channel when DT_A is i8

var<workgroup> As: array<vec4<f32>, TK * WG * 2u>; // [k][cout/4]
var<workgroup> Bs: array<vec4<f32>, TK * WG * 2u>; // [k][position/4]

fn ld_w(i: u32) -> f32 { return decode(wt[word_index(i, DT_A)], i, DT_A); }
fn ld_x(i: u32) -> f32 { return decode(x[word_index(i, DT_B)], i, DT_B); }
fn ld_bias(i: u32) -> f32 { return decode(bias[word_index(i, DT_C)], i, DT_C); }

// w_at is filter element k (of the summed part) of band row m, zero outside.
fn w_at(m: u32, k: u32, kt: u32, kb: u32, k_first: u32) -> f32 {
    if (m >= P.co_n || k >= kb) {
        return 0.0;
    }
    let v = ld_w((P.co0 + m) * kt + k_first + k - P.w_off);
    if (DT_A == 3u) {
        return v * wscale[P.co0 + m];
    }
    return v;
}

// x_at is the input under output position (oy, ox) at filter tap (ky, kx)
// of the channel starting at element cbase; zero in the padding and past
// the last position (ok false).
fn x_at(cbase: u32, ok: bool, oy: u32, ox: u32, ky: u32, kx: u32) -> f32 {
    let iy = i32(oy * P.stride + ky) - i32(P.pad);
    let ix = i32(ox * P.stride + kx) - i32(P.pad);
    if (!ok || iy < 0 || iy >= i32(P.h) || ix < 0 || ix >= i32(P.w)) {
        return 0.0;
    }
    return ld_x(cbase + u32(iy) * P.w + u32(ix) - P.x_off);
}

// store writes (or adds to) four outputs of band row m from position p.
fn store(batch: u32, m: u32, p: u32, np: u32, v: vec4<f32>) {
    if (m >= P.co_n) {
        return;
    }
    let co = P.co0 + m;
    var r = v;
    if ((P.flags & 1u) != 0u) {
        r += vec4<f32>(ld_bias(co));
    }
    let o = (batch * P.cout + co) * np + p - P.out_off;
    let acc = (P.flags & 2u) != 0u;
    for (var j = 0u; j < 4u; j++) {
        if (p + j < np) {
            var s = r[j];
            if (acc) {
                s += out[o + j];
            }
            out[o + j] = s;
        }
    }
}

@compute @workgroup_size(WG, WG)
fn conv2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let np = P.oh * P.ow;
    let kw = P.kw;
    let khw = P.kh * kw;
    let kt = P.cin * khw;    // filter row length
    let kb = P.ci_n * khw;   // summed part of the row
    let k_first = P.ci0 * khw;
    let tile = WG * TV;
    let tile_n = (P.base.x + wid.x) * tile;
    let tile_m = (P.base.y + wid.y) * tile; // within the band
    let batch = P.batch + P.base.z + wid.z;
    let tid = lid.y * WG + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < kb; k0 += TK) {
        for (var e = tid; e < TK * WG * 2u; e += WG * WG) {
            let kk = e % TK;
            let m4 = e / TK;
            let m = tile_m + m4 * 4u;
            let k = k0 + kk;
            As[kk * 2u * WG + m4] = vec4<f32>(w_at(m, k, kt, kb, k_first), w_at(m + 1u, k, kt, kb, k_first),
                                         w_at(m + 2u, k, kt, kb, k_first), w_at(m + 3u, k, kt, kb, k_first));
        }
        for (var e = tid; e < TK * WG * 2u; e += WG * WG) {
            let kk = e / (2u * WG);
            let n4 = e % (2u * WG);
            let k = k0 + kk;
            var v = vec4<f32>(0.0);
            if (k < kb) {
                let ci = P.ci0 + k / khw;
                let r = k % khw;
                let ky = r / kw;
                let kx = r - ky * kw;
                let cbase = (batch * P.cin + ci) * P.h * P.w;
                // Four consecutive positions, stepping (oy, ox) without
                // dividing again.
                let p = tile_n + n4 * 4u;
                var oy = p / P.ow;
                var ox = p - oy * P.ow;
                v.x = x_at(cbase, p < np, oy, ox, ky, kx);
                ox += 1u;
                if (ox == P.ow) { ox = 0u; oy += 1u; }
                v.y = x_at(cbase, p + 1u < np, oy, ox, ky, kx);
                ox += 1u;
                if (ox == P.ow) { ox = 0u; oy += 1u; }
                v.z = x_at(cbase, p + 2u < np, oy, ox, ky, kx);
                ox += 1u;
                if (ox == P.ow) { ox = 0u; oy += 1u; }
                v.w = x_at(cbase, p + 3u < np, oy, ox, ky, kx);
            }
            Bs[kk * 2u * WG + n4] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let av = As[kk * 2u * WG + 2u * lid.y];
            let aw = As[kk * 2u * WG + 2u * lid.y + 1u];
            let bv = Bs[kk * 2u * WG + 2u * lid.x];
            let bw = Bs[kk * 2u * WG + 2u * lid.x + 1u];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
            acc4 = fma(vec4<f32>(aw.x), bv, acc4);
            acc5 = fma(vec4<f32>(aw.y), bv, acc5);
            acc6 = fma(vec4<f32>(aw.z), bv, acc6);
            acc7 = fma(vec4<f32>(aw.w), bv, acc7);
            acc8 = fma(vec4<f32>(av.x), bw, acc8);
            acc9 = fma(vec4<f32>(av.y), bw, acc9);
            acc10 = fma(vec4<f32>(av.z), bw, acc10);
            acc11 = fma(vec4<f32>(av.w), bw, acc11);
            acc12 = fma(vec4<f32>(aw.x), bw, acc12);
            acc13 = fma(vec4<f32>(aw.y), bw, acc13);
            acc14 = fma(vec4<f32>(aw.z), bw, acc14);
            acc15 = fma(vec4<f32>(aw.w), bw, acc15);
        }
        workgroupBarrier();
    }
    let m = tile_m + lid.y * TV;
    let p = tile_n + lid.x * TV;
    store(batch, m + 0u, p, np, acc0);
    store(batch, m + 0u, p + 4u, np, acc8);
    store(batch, m + 1u, p, np, acc1);
    store(batch, m + 1u, p + 4u, np, acc9);
    store(batch, m + 2u, p, np, acc2);
    store(batch, m + 2u, p + 4u, np, acc10);
    store(batch, m + 3u, p, np, acc3);
    store(batch, m + 3u, p + 4u, np, acc11);
    store(batch, m + 4u, p, np, acc4);
    store(batch, m + 4u, p + 4u, np, acc12);
    store(batch, m + 5u, p, np, acc5);
    store(batch, m + 5u, p + 4u, np, acc13);
    store(batch, m + 6u, p, np, acc6);
    store(batch, m + 6u, p + 4u, np, acc14);
    store(batch, m + 7u, p, np, acc7);
    store(batch, m + 7u, p + 4u, np, acc15);
}
