// Adaptive clipping's element access on a caller's pool whose params and grads share one
// buffer: the window is bound once, read-write (WebGPU forbids binding one buffer
// read-only and read-write in one dispatch), both found through the place table.
//
// @binding(1)  grads  the pool's window, params and grads (read and written)
// @binding(10) places the place table (places.wgsl)

@group(0) @binding(1) var<storage, read_write> grads: array<f32>;

fn load_param(e: u32) -> f32 {
    return grads[place_of(e / 64u).params * 4u + e % 64u];
}

fn load_grad(e: u32) -> f32 {
    return grads[place_of(e / 64u).grads * 4u + e % 64u];
}

fn store_grad(e: u32, x: f32) {
    grads[place_of(e / 64u).grads * 4u + e % 64u] = x;
}
