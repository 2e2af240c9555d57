// A 16-bit slab with f32 master weights: the rule reads the 16-bit gradient (widened
// exactly), updates the f32 master in place, and writes the master rounded to 16 bits
// into the model copy the forward pass reads (to nearest even, or stochastically for bf16
// when the step state says so):  model ← round16(p_new),  p ← p_new.
//
// @binding(0)  params this slab's f32 master weights, vec4-packed (read and written)
// @binding(1)  grads  this slab's 16-bit gradients, four to a vec2<u32> (read)
// @binding(15) model  this slab's 16-bit parameters, four to a vec2<u32> (written)

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grads: array<vec2<u32>>;
@group(0) @binding(15) var<storage, read_write> model: array<vec2<u32>>;

fn load_grad(g: u32) -> vec4<f32> {
    return widen4(grads[g]);
}

fn load_param(p: u32) -> vec4<f32> {
    return params[p];
}

fn store_param(p: u32, x: vec4<f32>) {
    params[p] = x;
    model[p] = round_param(p, x);
}
