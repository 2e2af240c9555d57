// Adadelta (torch.optim.Adadelta, Zeiler 2012), VEC4_PER_INVOCATION vec4s per invocation,
// skipped when the step state says so; the order of operations is PyTorch's single-tensor
// loop:
//   g ← effective_grad(g);  g ← −g if maximize;  g ← g + wd·p
//   v ← v·ρ + (1 − ρ)·g·g
//   Δ ← sqrt(u + eps) / sqrt(v + eps) · g
//   u ← u·ρ + (1 − ρ)·Δ·Δ;  p ← p + (−lr)·Δ
// 1 − ρ is computed in f64 on the host. No fma: each product feeding a sum is rounded on
// its own (`exact`, update.wgsl), as in the reference. The twin of reference::adadelta.
//
// State slots 0, 1: square_avg (v), acc_delta (u), through load_state / store_state.

fn update(i: u32, at: At, block: u32, group: u32, u: Adadelta) {
    let p0 = load_param(at.p);
    let g = signed_decayed(rule_grad(at.g, block), p0, u.maximize, u.weight_decay);
    let v0 = load_state(0u, i);
    let acc0 = load_state(1u, i);
    let v = exact(v0 * u.rho) + exact(exact(u.one_minus_rho * g) * g);
    let delta = exact(div_rn(sqrt_rn(acc0 + u.eps), sqrt_rn(v + u.eps)) * g);
    let acc = exact(acc0 * u.rho) + exact(exact(u.one_minus_rho * delta) * delta);
    store_state(0u, i, select(v0, v, at.live));
    store_state(1u, i, select(acc0, acc, at.live));
    store_param(at.p, select(p0, p0 + exact(u.neg_lr * delta), at.live));
}
