// elementwise.wgsl: unary functions, affine and clamp, broadcasting binary
// operations, and the scheduler's linear combination Σ cᵢ·tᵢ.
// Formulas: SD_SEMANTICS.md §2 (SiLU, GELU erf and tanh forms, quick_gelu).

struct Params {
    base: vec4<u32>,
    n: u32,       // output elements
    op: u32,      // operation code (see the Go side)
    rank: u32,    // binary: dimensions; lincomb: inputs used (1..4)
    _pad: u32,
    f: vec4<f32>, // unary: scale, shift, lo, hi; lincomb: coefficients
    // binary windows: x is the output index of this dispatch's first
    // element; y, z and w are the element indices where out, a and b are
    // bound from (each index into them is reduced by it).
    win: vec4<u32>,
    shape: array<vec4<u32>, 2>, // binary: output shape (rank ≤ 8)
    sa: array<vec4<u32>, 2>,    // binary: a's strides (0 where broadcast)
    sb: array<vec4<u32>, 2>,    // binary: b's strides
}

override WG: u32 = 256u;
override DT_A: u32 = 0u;
override DT_B: u32 = 0u;
override DT_C: u32 = 0u;
override DT_D: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read> c: array<u32>;
@group(0) @binding(5) var<storage, read> d: array<u32>;

fn ld_a(i: u32) -> f32 { return decode(a[word_index(i, DT_A)], i, DT_A); }
fn ld_b(i: u32) -> f32 { return decode(b[word_index(i, DT_B)], i, DT_B); }
fn ld_c(i: u32) -> f32 { return decode(c[word_index(i, DT_C)], i, DT_C); }
fn ld_d(i: u32) -> f32 { return decode(d[word_index(i, DT_D)], i, DT_D); }

// erfc_approx is the complementary error function by the Chebyshev fit of
// Numerical Recipes (erfcc, §6.2), fractional error below 1.2e-7
// everywhere, so GELU keeps its relative accuracy in the far negative tail.
fn erfc_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277)))))))));
    return select(2.0 - r, r, x >= 0.0);
}

// tanh_safe avoids the overflow of exp-based tanh for large |x|.
fn tanh_safe(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// sigmoid is 1/(1+e^−x); the exponent is capped below f32 overflow
// (e^88 ≈ 1.7e38), where the result is 0 to f32 precision anyway.
fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(min(-x, 88.0)));
}

fn unary_fn(op: u32, x: f32) -> f32 {
    switch op {
        case 0u: { return x * sigmoid(x); }                                   // silu
        // gelu: 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2)
        case 1u: { return 0.5 * x * erfc_approx(-x * 0.70710678118654752); }
        // gelu_tanh: 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³)
        case 2u: { return x * sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x)); }
        case 3u: { return x * sigmoid(1.702 * x); }                           // quick_gelu
        case 4u: { return max(x, 0.0); }                                      // relu
        case 5u: { return tanh_safe(x); }                                     // tanh
        case 6u: { return sigmoid(x); }                                       // sigmoid
        case 7u: { return exp(x); }                                           // exp
        case 8u: { return -x; }                                               // neg
        case 9u: { return sqrt(x); }                                          // sqrt
        case 10u: { return x * x; }                                           // square
        case 100u: { return x * P.f.x + P.f.y; }                              // affine
        case 101u: { return min(max(x, P.f.z), P.f.w); }                      // clamp
        default: { return x; }
    }
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_wg(P.base, wid) * WG + li;
    if (i >= P.n) {
        return;
    }
    out[i] = unary_fn(P.op, ld_a(i));
}

fn binary_fn(op: u32, x: f32, y: f32) -> f32 {
    switch op {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        default: { return x; }
    }
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_wg(P.base, wid) * WG + li;
    if (i >= P.n) {
        return;
    }
    let g = P.win.x + i;
    var rem = g;
    var ia = 0u;
    var ib = 0u;
    for (var k = i32(P.rank) - 1; k >= 0; k--) {
        let dim = dim8(P.shape, u32(k));
        let idx = rem % dim;
        rem = rem / dim;
        ia += idx * dim8(P.sa, u32(k));
        ib += idx * dim8(P.sb, u32(k));
    }
    out[g - P.win.y] = binary_fn(P.op, ld_a(ia - P.win.z), ld_b(ib - P.win.w));
}

@compute @workgroup_size(WG)
fn lincomb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_wg(P.base, wid) * WG + li;
    if (i >= P.n) {
        return;
    }
    var s = P.f.x * ld_a(i);
    if (P.rank > 1u) {
        s += P.f.y * ld_b(i);
    }
    if (P.rank > 2u) {
        s += P.f.z * ld_c(i);
    }
    if (P.rank > 3u) {
        s += P.f.w * ld_d(i);
    }
    out[i] = s;
}
