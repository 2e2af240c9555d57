// 16-bit gradients of a clip kernel, widened exactly and written back rounded to nearest
// even (a lane the clip leaves alone keeps its bits: its value is exact in 16 bits).
//
// @binding(0) grads this slab's gradients, four to a vec2<u32> (read and written)

@group(0) @binding(0) var<storage, read_write> grads: array<vec2<u32>>;

fn load_grad(i: u32) -> vec4<f32> {
    return widen4(grads[i]);
}

fn store_grad(i: u32, x: vec4<f32>) {
    grads[i] = narrow4_nearest(x);
}
