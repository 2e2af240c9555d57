// ASGD (torch.optim.ASGD; Polyak & Juditsky 1992), VEC4_PER_INVOCATION vec4s per
// invocation, skipped when the step state says so; the order of operations is PyTorch's
// single-tensor loop, with η and μ the values its per-tensor `eta` and `mu` hold after
// step t − 1 (asgd_schedule):
//   η = lr / (1 + λlr·(t − 1))^α;   μ = 1 / max(1, t − 1 − t0)
//   g ← effective_grad(g);  g ← −g if maximize;  g ← g + wd·p
//   p ← p·(1 − λ·η) + (−η)·g
//   ax ← p if μ = 1, else ax + (p − ax)·μ
// η and μ in f32 here (PyTorch: f64, rounded to f32). The twin of reference::asgd.
//
// State slot 0: ax (the averaged parameters), through load_state / store_state.
// @binding(6) groups: one Asgd per parameter group (struct generated from AsgdUniform)

// (η, μ) for step t: the step size and the averaging weight after step t − 1.
fn asgd_schedule(t: u32, u: Asgd) -> vec2<f32> {
    let before = f32(t - 1u);
    let eta = div_rn1(u.lr, pow(1.0 + exact1(u.lambd_lr * before), u.alpha));
    // Python's max(1, d): 1 unless d > 1 (a NaN t0 gives 1, not NaN).
    let since = before - u.t0;
    let mu = select(1.0, div_rn1(1.0, since), since > 1.0);
    return vec2<f32>(eta, mu);
}

fn update(i: u32, at: At, block: u32, group: u32, u: Asgd) {
    let schedule = asgd_schedule(state.step, u);
    let eta = schedule.x;
    let mu = schedule.y;
    let p0 = load_param(at.p);
    let g = signed_decayed(rule_grad(at.g, block), p0, u.maximize, u.weight_decay);
    let decay = 1.0 - exact1(u.lambd * eta);
    let p = exact(p0 * decay) + exact((-eta) * g);
    let ax0 = load_state(0u, i);
    var ax = p;
    if mu != 1.0 {
        ax = ax0 + exact((p - ax0) * mu);
    }
    store_state(0u, i, select(ax0, ax, at.live));
    store_param(at.p, select(p0, p, at.live));
}
