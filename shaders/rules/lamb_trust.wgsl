// LAMB, trust pass: updates the moments (Optax's scale_by_adam) and returns, per vec4,
// Σp² and Σu² of the direction u = m̂ / (sqrt(v̂ + eps_root) + eps) + wd·p, for the
// per-tensor trust ratio; lamb.wgsl then applies it from the updated moments.
//   m ← (1 − β1)·g + β1·m;  v ← (1 − β2)·g² + β2·v;  m̂ = m / bc1, v̂ = v / bc2
//
// @binding(2) exp_avg  @binding(3) exp_avg_sq (state slots 0, 1: load_state / store_state)
// @binding(9) group_bias: (bc1, bc2) per group. Parameters and gradients through the
// access part at `at` (own or pooled, f32 or 16-bit).
// (lamb_table.wgsl, update.wgsl, trust_partials.wgsl)

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;

fn trust_terms(i: u32, at: At, live: vec4<bool>) -> vec2<f32> {
    let block = block_of(i);
    let group = group_of(block);
    let u = groups[group];
    let g = rule_grad(at.g, block);
    let m0 = load_state(0u, i);
    let v0 = load_state(1u, i);
    let m = select(m0, exact(u.one_minus_beta1 * g) + exact(u.beta1 * m0), live);
    let v = select(v0, exact(u.one_minus_beta2 * exact(g * g)) + exact(u.beta2 * v0), live);
    store_state(0u, i, m);
    store_state(1u, i, v);
    let p = select(vec4<f32>(0.0), load_param(at.p), live);
    let d = select(vec4<f32>(0.0), lamb_direction(m, v, p, group), live);
    return vec2<f32>(dot(p, p), dot(d, d));
}

// m̂ / (sqrt(v̂ + eps_root) + eps) + wd·p, the bias corrections from the finalize.
fn lamb_direction(m: vec4<f32>, v: vec4<f32>, p: vec4<f32>, group: u32) -> vec4<f32> {
    let u = groups[group];
    let bias = group_bias[group];
    let mhat = div_rn(m, vec4<f32>(bias.x));
    let vhat = div_rn(v, vec4<f32>(bias.y));
    return div_rn(mhat, sqrt_rn(vhat + u.eps_root) + u.eps) + exact(u.weight_decay * p);
}
