// Lion (Chen et al. 2023; optax.lion: scale_by_lion, add_decayed_weights,
// scale_by_learning_rate), VEC4_PER_INVOCATION vec4s per invocation, skipped when the step
// state says so; the order of operations is Optax's:
//   g ← effective_grad(g)
//   u ← sign((1 − β1)·g + β1·m)          (sign(0) = 0, NaN stays NaN)
//   u ← u + wd·p;  p ← p + (−lr)·u
//   m ← (1 − β2)·g + β2·m
// 1 − β is computed in f64 on the host. The twin of reference::lion.
//
// @binding(2) exp_avg (Optax's mu)  @binding(6) groups: one Lion per parameter group
// @binding(0) params  @binding(1) grads  @binding(5) state  @binding(7) slab  @binding(8) blocks
// (update.wgsl); in a pool, @binding(10) places (locate_pooled.wgsl). States are indexed
// by the virtual vec4 i, params and grads at `at`.

// jnp.sign: −1, 0 or 1, and NaN for NaN.
fn sign_keep_nan(x: vec4<f32>) -> vec4<f32> {
    let nan = (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    return select(sign(x), x, nan);
}

fn update(i: u32, at: At, block: u32, group: u32, u: Lion) {
    let p0 = load_param(at.p);
    let g = rule_grad(at.g, block);
    let m0 = load_state(0u, i);
    let update = sign_keep_nan(exact(u.one_minus_beta1 * g) + exact(u.beta1 * m0)) + exact(u.weight_decay * p0);
    store_param(at.p, select(p0, p0 + exact(u.neg_lr * update), at.live));
    store_state(0u, i, select(m0, exact(u.one_minus_beta2 * g) + exact(u.beta2 * m0), at.live));
}
