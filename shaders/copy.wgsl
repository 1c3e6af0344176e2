// copy.wgsl: data movement. A strided copy (Permute, Slice and each part of
// a Concat), nearest-neighbour resize, and row gather (embeddings).
//
// The strided copy and the resize run over a range of their elements
// starting at `start`, with out and the source bound from an element
// offset (out_off, a_off) that every index into them is reduced by, so
// tensors above a storage binding are copied in windows.

struct CopyParams {
    base: vec4<u32>,
    n: u32,       // elements copied by this dispatch
    rank: u32,    // dimensions of the copied region (≤ 8)
    src_off: u32, // element offset of the region in the source
    dst_off: u32, // element offset of the region in the destination
    start: u32,   // region index of this dispatch's first element
    out_off: u32, // element index of out where its binding starts
    a_off: u32,   // element index of the source where its binding starts
    _p0: u32,
    shape: array<vec4<u32>, 2>, // the region's shape
    ss: array<vec4<u32>, 2>,    // source strides per region dimension
    ds: array<vec4<u32>, 2>,    // destination strides per region dimension
}

struct ResizeParams {
    base: vec4<u32>,
    n: u32,       // output elements of this dispatch
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    ratio_h: f32, // in_h/out_h as float32
    ratio_w: f32,
    start: u32,   // output index of this dispatch's first element
    out_off: u32, // element index of out where its binding starts
    a_off: u32,   // element index of the source where its binding starts
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

struct GatherParams {
    base: vec4<u32>,
    n: u32,    // output elements: rows·d
    d: u32,    // row length
    _p0: u32,
    _p1: u32,
}

override WG: u32 = 256u;
override DT_A: u32 = 0u;

@group(0) @binding(0) var<uniform> P: CopyParams;
@group(0) @binding(0) var<uniform> R: ResizeParams;
@group(0) @binding(0) var<uniform> G: GatherParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;

fn ld_a(i: u32) -> f32 { return decode(a[word_index(i, DT_A)], i, DT_A); }

@compute @workgroup_size(WG)
fn strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let l = flat_wg(P.base, wid) * WG + li;
    if (l >= P.n) {
        return;
    }
    var rem = P.start + l;
    var si = P.src_off;
    var di = P.dst_off;
    for (var k = i32(P.rank) - 1; k >= 0; k--) {
        let dim = dim8(P.shape, u32(k));
        let idx = rem % dim;
        rem = rem / dim;
        si += idx * dim8(P.ss, u32(k));
        di += idx * dim8(P.ds, u32(k));
    }
    out[di - P.out_off] = ld_a(si - P.a_off);
}

// resize_nearest follows PyTorch's "nearest": src = min(floor(dst·ratio), in−1)
// with the ratio in float32 (SD_SEMANTICS.md §2).
@compute @workgroup_size(WG)
fn resize_nearest(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let l = flat_wg(R.base, wid) * WG + li;
    if (l >= R.n) {
        return;
    }
    let i = R.start + l;
    let ox = i % R.out_w;
    let oy = (i / R.out_w) % R.out_h;
    let plane = i / (R.out_w * R.out_h);
    let sy = min(u32(floor(f32(oy) * R.ratio_h)), R.in_h - 1u);
    let sx = min(u32(floor(f32(ox) * R.ratio_w)), R.in_w - 1u);
    out[i - R.out_off] = ld_a((plane * R.in_h + sy) * R.in_w + sx - R.a_off);
}

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_wg(G.base, wid) * WG + li;
    if (i >= G.n) {
        return;
    }
    let row = i / G.d;
    let col = i % G.d;
    out[i] = ld_a(ids[row] * G.d + col);
}
