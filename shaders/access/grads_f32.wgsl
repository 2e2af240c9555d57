// f32 gradients of the norm partials: one vec4 per load.
//
// @binding(0) grads this slab's gradients, vec4-packed

@group(0) @binding(0) var<storage, read> grads: array<vec4<f32>>;

fn load_grad(i: u32) -> vec4<f32> {
    return grads[i];
}
