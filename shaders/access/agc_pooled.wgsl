// Adaptive clipping's element access on a caller's pool: element e of the virtual space is
// found through the pool's place table (one row per 64-element block; a unit never leaves
// its tensor, so every element it names is live).
//
// @binding(0)  params the pool's params window (read)
// @binding(1)  grads  the pool's grads window (read and written)
// @binding(10) places the place table (places.wgsl)

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> grads: array<f32>;

fn load_param(e: u32) -> f32 {
    return params[place_of(e / 64u).params * 4u + e % 64u];
}

fn load_grad(e: u32) -> f32 {
    return grads[place_of(e / 64u).grads * 4u + e % 64u];
}

fn store_grad(e: u32, x: f32) {
    grads[place_of(e / 64u).grads * 4u + e % 64u] = x;
}
