// quantize.wgsl: 8-bit quantisation of a weight per row (per output
// channel), backend.Quantizer: s_r = max_j |w_rj| / 127 (1 for a row of
// zeros), q_rj = clamp(round(w_rj / s_r), −127, 127) with halves rounded
// away from zero, packed four to a word (element 4i in the lowest byte,
// dtype code 3 of prelude.wgsl). Two passes: row_scales, then pack.

struct QParams {
    base: vec4<u32>,
    rows: u32,
    k: u32, // elements per row
    n: u32, // elements in all
    _pad: u32,
}

override WG: u32 = 64u;
override DT_A: u32 = 0u; // the weight's dtype

@group(0) @binding(0) var<uniform> P: QParams;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;

fn ld_w(i: u32) -> f32 { return decode(w[word_index(i, DT_A)], i, DT_A); }

var<workgroup> part: array<f32, WG>;

// row_scales writes the scale of one row per workgroup (as f32 bits).
@compute @workgroup_size(WG)
fn row_scales(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = flat_wg(P.base, wid);
    var m = 0.0;
    if (row < P.rows) {
        for (var j = lid.x; j < P.k; j += WG) {
            m = max(m, abs(ld_w(row * P.k + j)));
        }
    }
    part[lid.x] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            part[lid.x] = max(part[lid.x], part[lid.x + s]);
        }
        workgroupBarrier();
    }
    if (lid.x == 0u && row < P.rows) {
        let top = part[0];
        out[row] = bitcast<u32>(select(top / 127.0, 1.0, top == 0.0));
    }
}

// pack writes one word (four elements) per invocation.
@compute @workgroup_size(WG)
fn pack(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let wi = flat_wg(P.base, wid) * WG + lid.x;
    if (wi * 4u >= P.n) {
        return;
    }
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
        let e = wi * 4u + j;
        if (e < P.n) {
            let v = ld_w(e) / scales[e / P.k];
            let q = clamp(sign(v) * floor(abs(v) + 0.5), -127.0, 127.0);
            word |= (bitcast<u32>(i32(q)) & 0xffu) << (8u * j);
        }
    }
    out[wi] = word;
}
