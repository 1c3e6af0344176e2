// norm.wgsl: normalisations and softmax, one workgroup per normalised set.
// GroupNorm and LayerNorm use the biased variance, computed in two passes
// (mean, then Σ(x−μ)²) for accuracy; RMSNorm is T5's LayerNorm
// (SD_SEMANTICS.md §2).
//
// A dispatch handles the sets [set0, set0+sets); x and out may be bound
// from an element offset (x_off, out_off) that every index is reduced by,
// so tensors above a storage binding are normalised in windows of whole
// sets.

struct NormParams {
    base: vec4<u32>,
    // group_norm: channels per group, positions per channel, channels, groups
    // layer_norm / softmax: row length, -, -, -
    len: u32,
    hw: u32,
    ch: u32,
    groups: u32,
    eps: f32,
    flags: u32, // 1: gamma, 2: beta, 4: SiLU after, 8: RMS (no mean)
    sets: u32,  // normalised sets of this dispatch (workgroups doing work)
    _p1: u32,
    set0: u32,    // the first set of this dispatch
    out_off: u32, // element index of out where its binding starts
    x_off: u32,   // element index of x where its binding starts
    _p2: u32,
}

override WG: u32 = 256u;
override DT_A: u32 = 0u;
override DT_B: u32 = 0u;
override DT_C: u32 = 0u;

@group(0) @binding(0) var<uniform> P: NormParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<u32>;
@group(0) @binding(3) var<storage, read> gamma: array<u32>;
@group(0) @binding(4) var<storage, read> beta: array<u32>;

// ld_x reads element i of x (a global index).
fn ld_x(i: u32) -> f32 {
    let j = i - P.x_off;
    return decode(x[word_index(j, DT_A)], j, DT_A);
}
fn ld_gamma(i: u32) -> f32 { return decode(gamma[word_index(i, DT_B)], i, DT_B); }
fn ld_beta(i: u32) -> f32 { return decode(beta[word_index(i, DT_C)], i, DT_C); }

var<workgroup> red: array<f32, WG>;

// reduce_sum returns the sum of v over the workgroup (WG a power of two).
fn reduce_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_max(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            red[li] = max(red[li], red[li + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn finish(v: f32, ch: u32) -> f32 {
    var y = v;
    if ((P.flags & 1u) != 0u) {
        y *= ld_gamma(ch);
    }
    if ((P.flags & 2u) != 0u) {
        y += ld_beta(ch);
    }
    if ((P.flags & 4u) != 0u) {
        y = y / (1.0 + exp(min(-y, 88.0)));
    }
    return y;
}

// group_norm handles one (batch, group): len = (C/G)·HW contiguous values.
@compute @workgroup_size(WG)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let wi = flat_wg(P.base, wid);
    if (wi >= P.sets) {
        return;
    }
    let gi = P.set0 + wi;
    let start = gi * P.len;
    let c0 = (gi % P.groups) * (P.ch / P.groups);
    var s = 0.0;
    for (var i = li; i < P.len; i += WG) {
        s += ld_x(start + i);
    }
    let mean = reduce_sum(li, s) / f32(P.len);
    var q = 0.0;
    for (var i = li; i < P.len; i += WG) {
        let t = ld_x(start + i) - mean;
        q += t * t;
    }
    let rstd = inverseSqrt(reduce_sum(li, q) / f32(P.len) + P.eps);
    for (var i = li; i < P.len; i += WG) {
        out[start + i - P.out_off] = finish((ld_x(start + i) - mean) * rstd, c0 + i / P.hw);
    }
}

// layer_norm normalises one row of length len; with flag 8 it is RMSNorm.
@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let wi = flat_wg(P.base, wid);
    if (wi >= P.sets) {
        return;
    }
    let start = (P.set0 + wi) * P.len;
    let rms = (P.flags & 8u) != 0u;
    var mean = 0.0;
    if (!rms) {
        var s = 0.0;
        for (var i = li; i < P.len; i += WG) {
            s += ld_x(start + i);
        }
        mean = reduce_sum(li, s) / f32(P.len);
    }
    var q = 0.0;
    for (var i = li; i < P.len; i += WG) {
        let t = ld_x(start + i) - mean;
        q += t * t;
    }
    let rstd = inverseSqrt(reduce_sum(li, q) / f32(P.len) + P.eps);
    for (var i = li; i < P.len; i += WG) {
        out[start + i - P.out_off] = finish((ld_x(start + i) - mean) * rstd, i);
    }
}

// softmax over one row: exp(x − max) / Σ exp(x − max).
@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let wi = flat_wg(P.base, wid);
    if (wi >= P.sets) {
        return;
    }
    let start = (P.set0 + wi) * P.len;
    var m = LOWEST;
    for (var i = li; i < P.len; i += WG) {
        m = max(m, ld_x(start + i));
    }
    m = reduce_max(li, m);
    var s = 0.0;
    for (var i = li; i < P.len; i += WG) {
        s += exp(ld_x(start + i) - m);
    }
    let inv = 1.0 / reduce_sum(li, s);
    for (var i = li; i < P.len; i += WG) {
        out[start + i - P.out_off] = exp(ld_x(start + i) - m) * inv;
    }
}
