// The gradients of an update kernel inside the params binding: a caller's buffer holding
// both a pool's params and its grads is bound once, read-write (WebGPU forbids binding one
// buffer read-only and read-write in one dispatch). The place table gives each block's
// gradient vec4 within that binding.
//
// @binding(0) params the caller's buffer, vec4-packed (read and written)

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;

fn load_grad(g: u32) -> vec4<f32> {
    return params[g];
}

fn load_param(p: u32) -> vec4<f32> {
    return params[p];
}

fn store_param(p: u32, x: vec4<f32>) {
    params[p] = x;
}
