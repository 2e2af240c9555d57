// LARS (You et al. 2017; optax.lars = add_decayed_weights, masked scale_by_trust_ratio,
// scale_by_learning_rate, trace), VEC4_PER_INVOCATION vec4s per invocation, skipped when
// the step state says so; the order of operations is Optax's:
//   u ← g + wd·p;  u ← u·ratio_t if the group is trust-scaled;  u ← u·(−lr)
//   b ← u + μ·b;   p ← p + (u + μ·b if nesterov, else b)
// ratio_t = trust_coefficient·‖p_t‖ / (‖u_t‖ + eps), 1 when either norm is 0 (trust_fold.wgsl).
// The twin of reference::lars.
//
// State slot 0: momentum_buffer (Optax's trace).  @binding(11) ratios  @binding(12) block_tensor
// (lars_table.wgsl, update.wgsl); params and grads through the access part, at `at`.

@group(0) @binding(11) var<storage, read> ratios: array<f32>;
@group(0) @binding(12) var<storage, read> block_tensor: array<u32>;

fn update(i: u32, at: At, block: u32, group: u32, u: Lars) {
    let p0 = load_param(at.p);
    var d = rule_grad(at.g, block) + exact(u.weight_decay * p0);
    if u.trust != 0u {
        d = exact(d * ratios[block_tensor[i / BLOCK_VEC4S]]);
    }
    d = exact(d * u.neg_lr);
    let b0 = load_state(0u, i);
    let b = d + exact(u.momentum * b0);
    store_state(0u, i, select(b0, b, at.live));
    var step = b;
    if u.nesterov != 0u {
        step = d + exact(u.momentum * b);
    }
    store_param(at.p, select(p0, p0 + step, at.live));
}
