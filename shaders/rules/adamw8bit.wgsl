// 8-bit AdamW (bitsandbytes.optim.AdamW8bit), on 8-bit states (shaders/q8_update.wgsl,
// src/kernels/q8.rs: load_state dequantizes, store_state's values are requantized with
// the row's new absmax after the update); bitsandbytes' CPU step in its order:
//   g ← effective_grad(g)
//   m ← m·β1 + (1 − β1)·g;   v ← v·β2 + (1 − β2)·g·g
//   p ← p·(1 − lr·wd)                                      when wd > 0
//   8-bit rows:  p ← p + (−lr / c1)·(m / (sqrt(v) / c2 + eps))
//   wide rows (f32 states, tensors below min_8bit_size):
//                p ← p + (−lr·c2 / c1)·(m / (sqrt(v) + eps·c2))
// c1 = 1 − β1^t, c2 = sqrt(1 − β2^t) (the finalize's group_bias: bc1, bc2). The update
// uses the moments before requantization. No fma: each product is rounded on its own
// (`exact`). The twin of reference::adamw8bit.
//
// State slots 0, 1: exp_avg (signed map), exp_avg_sq (unsigned map), bindings 2, 3.
// @binding(6) groups: one AdamW8bit per parameter group  @binding(9) group_bias: (bc1, bc2)
// @binding(0) params  @binding(1) grads  @binding(5) state  @binding(7) slab  @binding(8) blocks
// (update.wgsl); @binding(17) q8_rows, @binding(18) q8_maps (the state part).

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;

fn update(i: u32, at: At, block: u32, group: u32, u: AdamW8bit) {
    let bias = group_bias[group];
    let p0 = load_param(at.p);
    let g = rule_grad(at.g, block);
    let m0 = load_state(0u, i);
    let v0 = load_state(1u, i);
    let m = exact(m0 * u.beta1) + exact(u.one_minus_beta1 * g);
    let v = exact(v0 * u.beta2) + exact(exact(u.one_minus_beta2 * g) * g);
    store_state(0u, i, select(m0, m, at.live));
    store_state(1u, i, select(v0, v, at.live));
    var p = p0;
    if u.weight_decay > 0.0 {
        p = exact(p0 * u.decay_factor);
    }
    let c2 = sqrt_rn1(bias.y);
    var step: vec4<f32>;
    if q8_wide() {
        let neg_step_size = -div_rn1(exact1(u.lr * c2), bias.x);
        step = exact(neg_step_size * div_rn(m, sqrt_rn(v) + exact1(u.eps * c2)));
    } else {
        let neg_step_size = -div_rn1(u.lr, bias.x);
        step = exact(neg_step_size * div_rn(m, div_rn(sqrt_rn(v), vec4<f32>(c2)) + u.eps));
    }
    store_param(at.p, select(p0, p + step, at.live));
}
