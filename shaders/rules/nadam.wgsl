// NAdam (torch.optim.NAdam; Dozat 2016), VEC4_PER_INVOCATION vec4s per invocation, skipped
// when the step state says so; the order of operations is PyTorch's single-tensor loop:
//   g ← effective_grad(g);  g ← −g if maximize
//   decoupled: p ← p·(1 − lr·wd)        else: g ← g + wd·p
//   m ← lerp(m, g, 1 − β1);  v ← v·β2 + (1 − β2)·g·g
//   d = sqrt(v / bc2) + eps                                   bc2 = 1 − β2^step
//   p ← p + ((−lr·c_g)·g) / d;   p ← p + ((−lr·c_m)·m) / d
// with the finalize's per-group c_g = (1 − μ_t) / (1 − Π_t), c_m = μ_{t+1} / (1 − Π_t·μ_{t+1})
// (group_bias.zw; PyTorch computes them in f64, here f32). The twin of reference::nadam.
//
// State slots 0, 1: exp_avg, exp_avg_sq, through load_state / store_state.
// @binding(6) groups: one NAdam per parameter group (struct generated from NAdamUniform)
// @binding(9) group_bias: (bc1, bc2, c_g, c_m) per group

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;

fn update(i: u32, at: At, block: u32, group: u32, u: NAdam) {
    let bias = group_bias[group];
    let p0 = load_param(at.p);
    let decoupled = (u.flags & 2u) != 0u;
    let g_in = rule_grad(at.g, block);
    let decayed = adam_decay(g_in, p0, u.flags & 1u, u.weight_decay, u.decay_factor, decoupled);
    let g = decayed.g;
    var p = decayed.p;
    let moments = adam_moments(i, g, at.live, u.one_minus_beta1, u.beta2, u.one_minus_beta2);
    let m = moments.m;
    let v = moments.v;
    let denom = sqrt_rn(div_rn(v, vec4<f32>(bias.y))) + u.eps;
    p = p + div_rn(exact1(u.neg_lr * bias.z) * g, denom);
    p = p + div_rn(exact1(u.neg_lr * bias.w) * m, denom);
    store_param(at.p, select(p0, p, at.live));
}
