// The f32 params and gradients of an update kernel, each in its own binding (every slab
// of clipstep's own f32 sets, and a caller's pool whose params and grads are different
// buffers).
//
// @binding(0) params this slab's parameters, vec4-packed (read and written)
// @binding(1) grads  this slab's gradients, vec4-packed (read)

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grads: array<vec4<f32>>;

fn load_grad(g: u32) -> vec4<f32> {
    return grads[g];
}

fn load_param(p: u32) -> vec4<f32> {
    return params[p];
}

fn store_param(p: u32, x: vec4<f32>) {
    params[p] = x;
}
