// conv2d.wgsl: 2-D convolution as an implicit GEMM. For batch b,
// out[co, p] = Σ_k W[co, k] · X̂[k, p] (+ bias[co]) with p = oy·OW + ox and
// k = (ci·KH + ky)·KW + kx, where X̂ (im2col of x) is never stored: the
// tile loader reads x[b, ci, oy·s − pad + ky, ox·s − pad + kx], zero outside.
// The weight [Cout, Cin, KH, KW] is already the row-major [Cout, K] matrix.
// Tiling as in matmul.wgsl; the filter (and bias) may be f32, f16 or bf16.
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

override WG: u32 = 16u;
override TILE: u32 = WG * 4u;
override DT_A: u32 = 0u; // filter
override DT_B: u32 = 0u; // input
override DT_C: u32 = 0u; // bias
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;

var<workgroup> As: array<f32, TK * TILE>; // [k][cout]
var<workgroup> Bs: array<f32, TK * TILE>; // [k][position]

fn ld_w(i: u32) -> f32 { return decode(wt[word_index(i, DT_A)], i, DT_A); }
fn ld_x(i: u32) -> f32 { return decode(x[word_index(i, DT_B)], i, DT_B); }
fn ld_bias(i: u32) -> f32 { return decode(bias[word_index(i, DT_C)], i, DT_C); }

@compute @workgroup_size(WG, WG)
fn conv2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let np = P.oh * P.ow;
    let khw = P.kh * P.kw;
    let kt = P.cin * khw;    // filter row length
    let kb = P.ci_n * khw;   // summed part of the row
    let k_first = P.ci0 * khw;
    let tile_n = (P.base.x + wid.x) * TILE;
    let tile_m = (P.base.y + wid.y) * TILE; // within the band
    let batch = P.batch + P.base.z + wid.z;
    let tid = lid.y * WG + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < kb; k0 += TK) {
        for (var e = tid; e < TK * TILE; e += WG * WG) {
            let kk = e % TK;
            let mm = e / TK;
            var v = 0.0;
            if (tile_m + mm < P.co_n && k0 + kk < kb) {
                v = ld_w((P.co0 + tile_m + mm) * kt + k_first + k0 + kk - P.w_off);
            }
            As[kk * TILE + mm] = v;
        }
        for (var e = tid; e < TK * TILE; e += WG * WG) {
            let kk = e / TILE;
            let nn = e % TILE;
            var v = 0.0;
            let p = tile_n + nn;
            let k = k0 + kk;
            if (p < np && k < kb) {
                let ci = P.ci0 + k / khw;
                let r = k % khw;
                let iy = i32((p / P.ow) * P.stride + r / P.kw) - i32(P.pad);
                let ix = i32((p % P.ow) * P.stride + r % P.kw) - i32(P.pad);
                if (iy >= 0 && iy < i32(P.h) && ix >= 0 && ix < i32(P.w)) {
                    v = ld_x(((batch * P.cin + ci) * P.h + u32(iy)) * P.w + u32(ix) - P.x_off);
                }
            }
            Bs[kk * TILE + nn] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = As[kk * TILE + lid.y + i * WG];
                bv[i] = Bs[kk * TILE + lid.x + i * WG];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = tile_m + lid.y + i * WG;
        let co = P.co0 + m;
        for (var j = 0u; j < 4u; j++) {
            let p = tile_n + lid.x + j * WG;
            if (m < P.co_n && p < np) {
                let o = (batch * P.cout + co) * np + p - P.out_off;
                var v = acc[i * 4u + j];
                if ((P.flags & 1u) != 0u) {
                    v += ld_bias(co);
                }
                if ((P.flags & 2u) != 0u) {
                    v += out[o];
                }
                out[o] = v;
            }
        }
    }
}
