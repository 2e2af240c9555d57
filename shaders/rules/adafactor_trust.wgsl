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
    let g0 = rule_grad(at.g, block);
    let g = select(g0, -g0, u.maximize != 0u);
    var d: vec4<f32>;
    if is_vector(ft) {
        let k = variance_at(i);
        let v0 = variance[k];
        let v = select(v0, aten_lerp4(v0, exact(g * g), step_weight(group)), live);
        variance[k] = v;
        d = direction_from(v, g, u);
    } else {
        d = adafactor_direction(i, g, ft, u);
    }
    let p = select(vec4<f32>(0.0), load_param(at.p), live);
    d = select(vec4<f32>(0.0), d, live);
    return vec2<f32>(dot(p, p), dot(d, d));
}
