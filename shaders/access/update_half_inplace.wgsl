// A 16-bit slab without master weights, updated in place as PyTorch's fused AdamW updates
// bf16 parameters: widen, apply the rule in f32, round back (to nearest even, or
// stochastically for bf16 when the step state says so):  p16 ← round16(rule(f32(p16))).
// A lane the rule leaves alone is written back with its own bits (widening is exact).
//
// @binding(0) params this slab's 16-bit parameters, four to a vec2<u32> (read and written)
// @binding(1) grads  this slab's 16-bit gradients, four to a vec2<u32> (read)

@group(0) @binding(0) var<storage, read_write> params: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read> grads: array<vec2<u32>>;

fn load_grad(g: u32) -> vec4<f32> {
    return widen4(grads[g]);
}

fn load_param(p: u32) -> vec4<f32> {
    return widen4(params[p]);
}

fn store_param(p: u32, x: vec4<f32>) {
    params[p] = round_param(p, x);
}
