// Adamax (torch.optim.Adamax; Kingma & Ba 2015, §7.1), VEC4_PER_INVOCATION vec4s per
// invocation, skipped when the step state says so; the order of operations is PyTorch's
// single-tensor loop:
//   g ← effective_grad(g);  g ← −g if maximize;  g ← g + wd·p
//   m ← lerp(m, g, 1 − β1);  u ← max(u·β2, |g| + eps)        (NaN in either gives NaN)
//   p ← p + ((−lr / bc1)·m) / u                  bc1 = 1 − β1^step (the finalize's group_bias)
// 1 − β1 is computed in f64 on the host. The twin of reference::adamax.
//
// State slots 0, 1: exp_avg, exp_inf, through load_state / store_state.
// @binding(6) groups: one Adamax per parameter group (struct generated from AdamaxUniform)
// @binding(9) group_bias: (bc1, bc2) per group
// params and grads through the access part at `at`; states indexed by the virtual vec4 i.

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;

// torch.maximum: the larger of a and b, NaN when either is NaN.
fn maximum_keep_nan(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    let nan_a = (bitcast<vec4<u32>>(a) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    let nan_b = (bitcast<vec4<u32>>(b) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    return select(max(a, b), a + b, nan_a | nan_b);
}

fn update(i: u32, at: At, block: u32, group: u32, u: Adamax) {
    let p0 = load_param(at.p);
    let g = signed_decayed(rule_grad(at.g, block), p0, u.maximize, u.weight_decay);
    let m0 = load_state(0u, i);
    let inf0 = load_state(1u, i);
    let m = torch_lerp(m0, g, u.one_minus_beta1);
    let inf = maximum_keep_nan(inf0 * u.beta2, abs(g) + u.eps);
    store_state(0u, i, select(m0, m, at.live));
    store_state(1u, i, select(inf0, inf, at.live));
    let neg_clr = -div_rn1(u.lr, group_bias[group].x);
    store_param(at.p, select(p0, p0 + div_rn(neg_clr * m, inf), at.live));
}
