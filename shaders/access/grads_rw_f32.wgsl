// f32 gradients of a clip kernel, read and written in place.
//
// @binding(0) grads this slab's gradients, vec4-packed (read and written)

@group(0) @binding(0) var<storage, read_write> grads: array<vec4<f32>>;

fn load_grad(i: u32) -> vec4<f32> {
    return grads[i];
}

fn store_grad(i: u32, x: vec4<f32>) {
    grads[i] = x;
}
