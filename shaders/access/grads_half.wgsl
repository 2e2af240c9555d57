// 16-bit gradients of the norm partials, widened exactly to f32 (so a 16-bit NaN or ±Inf
// is one in f32 too, and is flagged by its f32 bit pattern).
//
// @binding(0) grads this slab's gradients, four to a vec2<u32>

@group(0) @binding(0) var<storage, read> grads: array<vec2<u32>>;

fn load_grad(i: u32) -> vec4<f32> {
    return widen4(grads[i]);
}
