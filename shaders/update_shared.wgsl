// The gradients of an update kernel inside the params binding: a caller's buffer holding
// both a pool's params and its grads is bound once, read-write (WebGPU forbids binding one
// buffer read-only and read-write in one dispatch). The place table gives each block's
// gradient vec4 within that binding.

fn load_grad(g: u32) -> vec4<f32> {
    return params[g];
}
