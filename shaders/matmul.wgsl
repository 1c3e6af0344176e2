// matmul.wgsl: batched C = A·B (+ bias) with shared-memory tiles.
// A is [batch, M, K] (stored [batch, K, M] when TRANS_A), B is
// [bBatch, K, N] (stored [bBatch, N, K] when TRANS_B, a Linear weight);
// B's batch dimensions broadcast against A's (up to four after merging):
// batch i of A, unravelled over bshape, reads B at Σ idx·bstride, with
// stride 0 along broadcast dimensions. The weight operand B (and bias)
// may be f32, f16 or bf16 (DT_B, DT_C), or, for B stored [N, K]
// (TRANS_B), i8 quantised per row: element (n, k) is then wscale[n] times
// the stored integer (backend.Quantizer).
//
// Register blocking: a workgroup of WG×WG threads computes a TILE×TILE
// block of C (TILE = 8·WG), each thread a contiguous 8×8 sub-block held in
// sixteen vec4 accumulators (rows × two halves) updated with fma. The K
// dimension is walked in steps of TK; the shared tiles are vec4 arrays
// ([k][m/4] and [k][n/4]), so each step of the inner loop reads two vec4s
// of A and two of B and issues sixteen vec4 fmas. Private arrays indexed
// by loop counters are avoided: software adapters (SwiftShader) spill them
// to memory. Each output is still one fma chain over k in order, so the
// result does not depend on the tiling.

struct MMParams {
    base: vec4<u32>,
    m: u32,
    n: u32,
    k: u32,
    flags: u32,     // 1: add bias[N]
    a_bs: u32,      // A's batch stride (elements)
    _p0: u32,
    _p1: u32,
    _p2: u32,
    bshape: vec4<u32>,  // A's batch dimensions (leading ones padded with 1)
    bstride: vec4<u32>, // B's element stride per batch dimension
}

override WG: u32 = 8u;
override TK: u32 = 16u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override DT_A: u32 = 0u;
override DT_B: u32 = 0u;
override DT_C: u32 = 0u;
const TV: u32 = 8u; // outputs per thread along each side (two vec4s)

@group(0) @binding(0) var<uniform> P: MMParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;
@group(0) @binding(5) var<storage, read> wscale: array<f32>; // per row of B when DT_B is i8

var<workgroup> As: array<vec4<f32>, TK * WG * 2u>; // [k][m/4], 2·WG vec4s a row
var<workgroup> Bs: array<vec4<f32>, TK * WG * 2u>; // [k][n/4]

fn ld_a(i: u32) -> f32 { return decode(a[word_index(i, DT_A)], i, DT_A); }
fn ld_b(i: u32) -> f32 { return decode(b[word_index(i, DT_B)], i, DT_B); }
fn ld_bias(i: u32) -> f32 { return decode(bias[word_index(i, DT_C)], i, DT_C); }

// a_at is A[batch][row][kk], zero outside the matrix.
fn a_at(batch: u32, row: u32, kk: u32) -> f32 {
    if (row >= P.m || kk >= P.k) {
        return 0.0;
    }
    if (TRANS_A) {
        return ld_a(batch * P.a_bs + kk * P.m + row);
    }
    return ld_a(batch * P.a_bs + row * P.k + kk);
}

// b_at is B[kk][col] of the batch starting at boff, zero outside.
fn b_at(boff: u32, kk: u32, col: u32) -> f32 {
    if (col >= P.n || kk >= P.k) {
        return 0.0;
    }
    if (TRANS_B) {
        let v = ld_b(boff + col * P.k + kk);
        if (DT_B == 3u) {
            return v * wscale[col];
        }
        return v;
    }
    return ld_b(boff + kk * P.n + col);
}

// store writes four outputs of one row starting at column col.
fn store(batch: u32, row: u32, col: u32, v: vec4<f32>, bv: vec4<f32>) {
    if (row >= P.m) {
        return;
    }
    let o = (batch * P.m + row) * P.n + col;
    let r = v + bv;
    if (col + 3u < P.n) {
        out[o] = r.x;
        out[o + 1u] = r.y;
        out[o + 2u] = r.z;
        out[o + 3u] = r.w;
        return;
    }
    if (col < P.n) { out[o] = r.x; }
    if (col + 1u < P.n) { out[o + 1u] = r.y; }
    if (col + 2u < P.n) { out[o + 2u] = r.z; }
}

@compute @workgroup_size(WG, WG)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile_n = (P.base.x + wid.x) * WG * TV;
    let tile_m = (P.base.y + wid.y) * WG * TV;
    let batch = P.base.z + wid.z;
    var rem = batch;
    var bb = 0u;
    for (var i = 3; i >= 0; i--) {
        bb += (rem % P.bshape[i]) * P.bstride[i];
        rem /= P.bshape[i];
    }
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
    for (var k0 = 0u; k0 < P.k; k0 += TK) {
        // Each thread fills whole vec4s: four rows (columns) at one k.
        // Neighbouring threads walk the operand's contiguous dimension.
        for (var e = tid; e < TK * WG * 2u; e += WG * WG) {
            var kk: u32;
            var m4: u32;
            if (TRANS_A) {
                kk = e / (2u * WG);
                m4 = e % (2u * WG);
            } else {
                kk = e % TK;
                m4 = e / TK;
            }
            let row = tile_m + m4 * 4u;
            let k = k0 + kk;
            As[kk * 2u * WG + m4] = vec4<f32>(a_at(batch, row, k), a_at(batch, row + 1u, k),
                                         a_at(batch, row + 2u, k), a_at(batch, row + 3u, k));
        }
        for (var e = tid; e < TK * WG * 2u; e += WG * WG) {
            var kk: u32;
            var n4: u32;
            if (TRANS_B) {
                kk = e % TK;
                n4 = e / TK;
            } else {
                kk = e / (2u * WG);
                n4 = e % (2u * WG);
            }
            let col = tile_n + n4 * 4u;
            let k = k0 + kk;
            Bs[kk * 2u * WG + n4] = vec4<f32>(b_at(bb, k, col), b_at(bb, k, col + 1u),
                                         b_at(bb, k, col + 2u), b_at(bb, k, col + 3u));
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
    let row = tile_m + lid.y * TV;
    let col = tile_n + lid.x * TV;
    var bv = vec4<f32>(0.0);
    var bw = vec4<f32>(0.0);
    if ((P.flags & 1u) != 0u) {
        let l = P.n - 1u;
        bv = vec4<f32>(ld_bias(min(col, l)), ld_bias(min(col + 1u, l)), ld_bias(min(col + 2u, l)), ld_bias(min(col + 3u, l)));
        bw = vec4<f32>(ld_bias(min(col + 4u, l)), ld_bias(min(col + 5u, l)), ld_bias(min(col + 6u, l)), ld_bias(min(col + 7u, l)));
    }
    store(batch, row + 0u, col, acc0, bv);
    store(batch, row + 0u, col + 4u, acc8, bw);
    store(batch, row + 1u, col, acc1, bv);
    store(batch, row + 1u, col + 4u, acc9, bw);
    store(batch, row + 2u, col, acc2, bv);
    store(batch, row + 2u, col + 4u, acc10, bw);
    store(batch, row + 3u, col, acc3, bv);
    store(batch, row + 3u, col + 4u, acc11, bw);
    store(batch, row + 4u, col, acc4, bv);
    store(batch, row + 4u, col + 4u, acc12, bw);
    store(batch, row + 5u, col, acc5, bv);
    store(batch, row + 5u, col + 4u, acc13, bw);
    store(batch, row + 6u, col, acc6, bv);
    store(batch, row + 6u, col + 4u, acc14, bw);
    store(batch, row + 7u, col, acc7, bv);
    store(batch, row + 7u, col + 4u, acc15, bw);
}
