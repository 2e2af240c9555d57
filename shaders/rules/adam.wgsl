// Adam / AdamW (torch.optim.Adam, torch.optim.AdamW), VEC4_PER_INVOCATION vec4s per
// invocation, skipped when the step state says so; the order of operations is PyTorch's
// single-tensor loop:
//   g ← effective_grad(g);  g ← −g if maximize
//   AdamW: p ← p·(1 − lr·wd)        Adam: g ← g + wd·p
//   m ← lerp(m, g, 1 − β1);  v ← v·β2 + (1 − β2)·g·g
//   v̂ ← max(v̂, v) with amsgrad, else v
//   p ← p + (−lr / bc1)·m / (sqrt(v̂) / sqrt(bc2) + eps)     bc_k = 1 − β_k^step (the finalize's group_bias)
// 1 − β, 1 − lr·wd are computed in f64 on the host. No fma: each product feeding a
// sum is rounded on its own (`exact`, update.wgsl), as in the reference. The twin of reference::adam.
//
// State slots 0, 1, 2: exp_avg, exp_avg_sq, max_exp_avg_sq (bindings 2, 3, 4), f32 or bf16
// as the key's state storage says (the state part, src/kernels/shaders.rs), through load_state /
// store_state.
// @binding(6) groups: one Adam per parameter group  @binding(9) group_bias: (bc1, bc2) per group
// @binding(0) params  @binding(1) grads  @binding(5) state  @binding(7) slab  @binding(8) blocks
// (update.wgsl); in a pool, @binding(10) places (locate_pooled.wgsl). States are indexed
// by the virtual vec4 i, params and grads at `at`.

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;

fn update(i: u32, at: At, block: u32, group: u32, u: Adam) {
    let bias = group_bias[group];
    let p0 = load_param(at.p);
    // AdamW decays the parameter; Adam adds an L2 penalty to the gradient.
    let decoupled = u.decoupled_weight_decay != 0u;
    let g_in = rule_grad(at.g, block);
    let decayed = adam_decay(g_in, p0, u.maximize, u.weight_decay, u.decay_factor, decoupled);
    let g = decayed.g;
    let p = decayed.p;
    let moments = adam_moments(i, g, at.live, u.one_minus_beta1, u.beta2, u.one_minus_beta2);
    let m = moments.m;
    let v = moments.v;
    var vhat = v;
    if AMSGRAD && u.amsgrad != 0u {
        let vmax0 = load_state(2u, i);
        vhat = max(vmax0, v);
        store_state(2u, i, select(vmax0, vhat, at.live));
    }
    let neg_step_size = -div_rn1(u.lr, bias.x);
    let denom = div_rn(sqrt_rn(vhat), vec4<f32>(sqrt_rn1(bias.y))) + u.eps;
    store_param(at.p, select(p0, p + div_rn(neg_step_size * m, denom), at.live));
}
