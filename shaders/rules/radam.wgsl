// RAdam (torch.optim.RAdam; Liu et al. 2020), VEC4_PER_INVOCATION vec4s per invocation,
// skipped when the step state says so; the order of operations is PyTorch's single-tensor
// loop:
//   g ← effective_grad(g);  g ← −g if maximize
//   decoupled: p ← p·(1 − lr·wd)        else: g ← g + wd·p
//   m ← lerp(m, g, 1 − β1);  v ← v·β2 + (1 − β2)·g·g
//   r > 0 (ρt > 5):  p ← p − ((m / bc1)·lr · ((1 / (sqrt(v) + eps))·sqrt(bc2)))·r
//   r = 0:           p ← p − (m / bc1)·lr
// with the finalize's per-group bc1, bc2 = 1 − β^step, r and sqrt(bc2) (group_bias; ρt and r
// from the step it counted, radam_coefficients in norm_finalize.wgsl; PyTorch computes them
// in f64, here f32). The twin of reference::radam.
//
// State slots 0, 1: exp_avg, exp_avg_sq, through load_state / store_state.
// @binding(6) groups: one RAdam per parameter group (struct generated from RAdamUniform)
// @binding(9) group_bias: (bc1, bc2, r, sqrt(bc2)) per group

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;

fn update(i: u32, at: At, block: u32, group: u32, u: RAdam) {
    let bias = group_bias[group];
    let p0 = load_param(at.p);
    let decoupled = (u.flags & 2u) != 0u;
    let g_in = rule_grad(at.g, block);
    let decayed = adam_decay(g_in, p0, u.flags & 1u, u.weight_decay, u.decay_factor, decoupled);
    let g = decayed.g;
    let p = decayed.p;
    let moments = adam_moments(i, g, at.live, u.one_minus_beta1, u.beta2, u.one_minus_beta2);
    let m = moments.m;
    let v = moments.v;
    var step = exact(div_rn(m, vec4<f32>(bias.x)) * u.lr);
    if bias.z > 0.0 {
        let adaptive = exact(div_rn(vec4<f32>(1.0), sqrt_rn(v) + u.eps) * bias.w);
        step = exact(exact(step * adaptive) * bias.z);
    }
    store_param(at.p, select(p0, p - step, at.live));
}
