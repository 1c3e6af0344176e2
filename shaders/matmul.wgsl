// matmul.wgsl: batched C = A·B (+ bias) with shared-memory tiles.
// A is [batch, M, K] (stored [batch, K, M] when TRANS_A), B is
// [bBatch, K, N] (stored [bBatch, N, K] when TRANS_B, a Linear weight);
// B's batch dimensions broadcast against A's (up to four after merging):
// batch i of A, unravelled over bshape, reads B at Σ idx·bstride, with
// stride 0 along broadcast dimensions. Each workgroup of WG×WG
// threads computes a TILE×TILE block of C, each thread a 4×4 sub-block
// strided by WG; the K dimension is walked in steps of TK. The weight
// operand B (and bias) may be f32, f16 or bf16 (DT_B, DT_C).

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

override WG: u32 = 16u;
override TILE: u32 = WG * 4u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override DT_A: u32 = 0u;
override DT_B: u32 = 0u;
override DT_C: u32 = 0u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> P: MMParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;

var<workgroup> As: array<f32, TK * TILE>; // [k][m]
var<workgroup> Bs: array<f32, TK * TILE>; // [k][n]

fn ld_a(i: u32) -> f32 { return decode(a[word_index(i, DT_A)], i, DT_A); }
fn ld_b(i: u32) -> f32 { return decode(b[word_index(i, DT_B)], i, DT_B); }
fn ld_bias(i: u32) -> f32 { return decode(bias[word_index(i, DT_C)], i, DT_C); }

fn a_at(batch: u32, row: u32, kk: u32) -> f32 {
    if (TRANS_A) {
        return ld_a(batch * P.a_bs + kk * P.m + row);
    }
    return ld_a(batch * P.a_bs + row * P.k + kk);
}

fn b_at(boff: u32, kk: u32, col: u32) -> f32 {
    if (TRANS_B) {
        return ld_b(boff + col * P.k + kk);
    }
    return ld_b(boff + kk * P.n + col);
}

@compute @workgroup_size(WG, WG)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile_n = (P.base.x + wid.x) * TILE;
    let tile_m = (P.base.y + wid.y) * TILE;
    let batch = P.base.z + wid.z;
    var rem = batch;
    var bb = 0u;
    for (var i = 3; i >= 0; i--) {
        bb += (rem % P.bshape[i]) * P.bstride[i];
        rem /= P.bshape[i];
    }
    let tid = lid.y * WG + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < P.k; k0 += TK) {
        for (var e = tid; e < TK * TILE; e += WG * WG) {
            var kk: u32;
            var mm: u32;
            if (TRANS_A) {
                kk = e / TILE;
                mm = e % TILE;
            } else {
                kk = e % TK;
                mm = e / TK;
            }
            var v = 0.0;
            if (tile_m + mm < P.m && k0 + kk < P.k) {
                v = a_at(batch, tile_m + mm, k0 + kk);
            }
            As[kk * TILE + mm] = v;
        }
        for (var e = tid; e < TK * TILE; e += WG * WG) {
            var kk: u32;
            var nn: u32;
            if (TRANS_B) {
                kk = e % TK;
                nn = e / TK;
            } else {
                kk = e / TILE;
                nn = e % TILE;
            }
            var v = 0.0;
            if (tile_n + nn < P.n && k0 + kk < P.k) {
                v = b_at(bb, k0 + kk, tile_n + nn);
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
        let row = tile_m + lid.y + i * WG;
        for (var j = 0u; j < 4u; j++) {
            let col = tile_n + lid.x + j * WG;
            if (row < P.m && col < P.n) {
                var v = acc[i * 4u + j];
                if ((P.flags & 1u) != 0u) {
                    v += ld_bias(col);
                }
                out[(batch * P.m + row) * P.n + col] = v;
            }
        }
    }
}
