// Adafactor, trust pass (after factor_fold.wgsl and factor_means.wgsl): a vector's
// variance moved first (PyTorch's variance.lerp_(g², t^beta2_decay)), then per vec4
// Σp² and Σu² of the parameters and of the direction
//   u = g·rsqrt(max(v̂, eps1²))        (v̂: factored_estimate.wgsl)
// for the per-tensor step size (adafactor_ratio.wgsl); adafactor.wgsl then applies it.
//
// @binding(12) block_tensor  per 64-element block of the slab, its tensor
// The states at 2-4, 16 and 22 (factored_bindings.wgsl, factored_variance.wgsl), parameters and gradients through the
// access part at `at`. (adafactor_table.wgsl, adafactor.wgsl, trust_partials.wgsl)

@group(0) @binding(12) var<storage, read> block_tensor: array<u32>;

fn trust_terms(i: u32, at: At, live: vec4<bool>) -> vec2<f32> {
    let block = block_of(i);
    let group = group_of(block);
    let u = groups[group];
    let ft = factor_tensors[block_tensor[i / BLOCK_VEC4S]];
    let g = select(rule_grad(at.g, block), -rule_grad(at.g, block), u.maximize != 0u);
    if ft.cols == 0u {
        let k = variance_at(i);
        let v0 = variance[k];
        variance[k] = select(v0, aten_lerp4(v0, exact(g * g), step_weight(group)), live);
    }
    let p = select(vec4<f32>(0.0), load_param(at.p), live);
    let d = select(vec4<f32>(0.0), adafactor_direction(i, g, ft, u), live);
    return vec2<f32>(dot(p, p), dot(d, d));
}
