// RAdam (torch.optim.RAdam; Liu et al. 2020), VEC4_PER_INVOCATION vec4s per invocation,
// skipped when the step state says so; the order of operations is PyTorch's single-tensor
// loop:
//   g ← effective_grad(g);  g ← −g if maximize
//   decoupled: p ← p·(1 − lr·wd)        else: g ← g + wd·p
//   m ← lerp(m, g, 1 − β1);  v ← v·β2 + (1 − β2)·g·g
//   ρt = ρ∞ − 2t·β2^t / (1 − β2^t)       (rho_t below)
//   ρt > 5:  r = sqrt((ρt − 4)(ρt − 2)·ρ∞/((ρ∞ − 4)(ρ∞ − 2)) / ρt)
//            p ← p − ((m / bc1)·lr · ((1 / (sqrt(v) + eps))·sqrt(bc2))) · r
//   else:    p ← p − (m / bc1)·lr            bc_k = 1 − β_k^step (the finalize's group_bias)
// PyTorch computes ρt and r in f64; here they are f32, from t and −ln β2, with no
// cancellation (a few ulp: the switch at ρt = 5 is decided as in f64 wherever ρt is not
// within 1e-5 of 5; ρt − 5 is 4e-3 at the closest for β2 = 0.999). The twin of
// reference::radam.
//
// State slots 0, 1: exp_avg, exp_avg_sq, through load_state / store_state.
// @binding(6) groups: one RAdam per parameter group (struct generated from RAdamUniform)
// @binding(9) group_bias: (bc1, bc2) per group

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;

// ρt for step t. With x = t·(−ln β2), 2t·β2^t / (1 − β2^t) = 2t / expm1(x); for x < 0.5,
// ρ∞ − 2t / expm1(x) = (ρ∞ − 2/(−ln β2)) + t·(1 − x/6 + x³/360 − x⁵/15120 + x⁷/604800)
// (x / expm1(x)'s Bernoulli series, the cancelling constant taken in f64 on the host),
// else the plain formula, which loses under 2 bits there.
fn rho_t(t: u32, u: RAdam) -> f32 {
    let tf = f32(t);
    let x = tf * u.neg_log_beta2;
    if x < 0.5 {
        let x2 = x * x;
        let tail = x * x2 * (1.0 / 360.0 - x2 * (1.0 / 15120.0 - x2 * (1.0 / 604800.0)));
        return u.rho_small + tf * ((1.0 - x / 6.0) + tail);
    }
    return u.rho_inf - 2.0 * tf / (exp(x) - 1.0);
}

fn update(i: u32, at: At, block: u32, group: u32, u: RAdam) {
    let bias = group_bias[group];
    let p0 = load_param(at.p);
    let maximize = u.flags & 1u;
    let decoupled = (u.flags & 2u) != 0u;
    let l2 = select(u.weight_decay, 0.0, decoupled);
    let g = signed_decayed(rule_grad(at.g, block), p0, maximize, l2);
    var p = p0;
    if decoupled && u.weight_decay != 0.0 {
        p = exact(p * u.decay_factor);
    }
    let m0 = load_state(0u, i);
    let v0 = load_state(1u, i);
    let m = torch_lerp(m0, g, u.one_minus_beta1);
    let v = exact(v0 * u.beta2) + exact(exact(u.one_minus_beta2 * g) * g);
    store_state(0u, i, select(m0, m, at.live));
    store_state(1u, i, select(v0, v, at.live));
    var step = exact(div_rn(m, vec4<f32>(bias.x)) * u.lr);
    let rho = rho_t(state.step, u);
    if u.rho_inf > 5.0 && rho > 5.0 {
        let rect = sqrt_rn1(div_rn1(exact1(exact1((rho - 4.0) * (rho - 2.0)) * u.rect_factor), rho));
        let adaptive = exact(div_rn(vec4<f32>(1.0), sqrt_rn(v) + u.eps) * sqrt_rn1(bias.y));
        step = exact(exact(step * adaptive) * rect);
    }
    store_param(at.p, select(p0, p - step, at.live));
}
