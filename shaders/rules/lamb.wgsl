// LAMB (You et al. 2019; optax.lamb = scale_by_adam, add_decayed_weights,
// scale_by_trust_ratio, scale_by_learning_rate), VEC4_PER_INVOCATION vec4s per invocation,
// after lamb_trust.wgsl updated the moments; skipped when the step state says so:
//   u ← m̂ / (sqrt(v̂ + eps_root) + eps) + wd·p;  u ← u·ratio_t;  p ← p + u·(−lr)
// ratio_t = ‖p_t‖ / ‖u_t‖, 1 when either norm is 0 (trust_fold.wgsl). The twin of
// reference::lamb.
//
// State slots 0, 1: exp_avg, exp_avg_sq.  @binding(9) group_bias  @binding(11) ratios
// @binding(12) block_tensor  (lamb_table.wgsl, update.wgsl); params and grads through the
// access part, at `at`.

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> ratios: array<f32>;
@group(0) @binding(12) var<storage, read> block_tensor: array<u32>;

fn update(i: u32, at: At, block: u32, group: u32, u: Lamb) {
    let p0 = load_param(at.p);
    let bias = group_bias[group];
    let mhat = div_rn(load_state(0u, i), vec4<f32>(bias.x));
    let vhat = div_rn(load_state(1u, i), vec4<f32>(bias.y));
    var d = div_rn(mhat, sqrt_rn(vhat + u.eps_root) + u.eps) + exact(u.weight_decay * p0);
    d = exact(d * ratios[block_tensor[i / BLOCK_VEC4S]]);
    store_param(at.p, select(p0, p0 + exact(d * u.neg_lr), at.live));
}
