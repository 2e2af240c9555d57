// Adaptive clipping's element access on a slab of clipstep's own: element e of the
// virtual space is element e of the params and of the grads.
//
// @binding(0) params this slab's parameters (read)
// @binding(1) grads  this slab's gradients (read and written)

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> grads: array<f32>;

fn load_param(e: u32) -> f32 {
    return params[e];
}

fn load_grad(e: u32) -> f32 {
    return grads[e];
}

fn store_grad(e: u32, x: f32) {
    grads[e] = x;
}
