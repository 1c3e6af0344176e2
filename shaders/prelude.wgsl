// prelude.wgsl is prepended to every shader of this package.
//
// Tensors are bound as arrays of 32-bit words and decoded by dtype code:
// 0 = f32, 1 = f16 (two per word, element 2k in the low half), 2 = bf16
// (likewise packed; bf16 is the top half of an f32, so a shift widens it),
// 3 = i8 (four per word, element 4k in the lowest byte: the integers of a
// weight quantised per row, which matmul.wgsl and conv2d.wgsl multiply by
// the row's scale). No shader-f16 feature is needed.
//
// Binding 0 of every kernel is its parameter struct, a uniform bound with a
// dynamic offset, whose first member `base` is the workgroup offset of this
// dispatch (a dispatch too large for maxComputeWorkgroupsPerDimension is
// split into several) and, for flat kernels, base.w is the row pitch of
// the 2-D grid a long 1-D range of workgroups is folded into.

// LOWEST is the most negative finite f32 (torch.finfo(float32).min, the
// value masks use).
const LOWEST: f32 = -0x1.fffffep+127f;

// word_index returns the index of the word holding element i.
fn word_index(i: u32, dt: u32) -> u32 {
    if (dt == 3u) {
        return i >> 2u;
    }
    return select(i >> 1u, i, dt == 0u);
}

// decode widens element i, held in word, from dtype dt to f32.
fn decode(word: u32, i: u32, dt: u32) -> f32 {
    if (dt == 0u) {
        return bitcast<f32>(word);
    }
    if (dt == 3u) {
        // Shift byte i%4 to the top, then an arithmetic shift sign-extends it.
        return f32(bitcast<i32>(word << (24u - 8u * (i & 3u))) >> 24u);
    }
    let hi = (i & 1u) == 1u;
    if (dt == 1u) {
        let p = unpack2x16float(word);
        return select(p.x, p.y, hi);
    }
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, hi));
}

// flat_wg returns the linear workgroup number of a flat kernel.
fn flat_wg(base: vec4<u32>, wid: vec3<u32>) -> u32 {
    return (base.y + wid.y) * base.w + base.x + wid.x;
}

// dim8 reads entry i of eight u32 values packed in two vec4s.
fn dim8(v: array<vec4<u32>, 2>, i: u32) -> u32 {
    return v[i >> 2u][i & 3u];
}
