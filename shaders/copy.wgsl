// Copy, the bandwidth roofline of `clipstep bench`: dst_i ← src_i, one vec4 per invocation,
// 8 bytes moved per element, over the same slabs as every other kernel.
//
// @binding(0) src  a slab, vec4-packed
// @binding(1) dst  a slab of the same length (written)
// @binding(2) slab Slab (len)

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> slab: Slab;

fn enabled() -> bool {
    return true;
}

fn apply(i: u32) {
    dst[i] = src[i];
}
