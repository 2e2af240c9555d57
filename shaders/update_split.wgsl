// The gradients of an update kernel in their own binding (every slab of clipstep's own,
// and a caller's pool whose params and grads are different buffers).
//
// @binding(1) grads this slab's gradients, vec4-packed (read)

@group(0) @binding(1) var<storage, read> grads: array<vec4<f32>>;

fn load_grad(g: u32) -> vec4<f32> {
    return grads[g];
}
