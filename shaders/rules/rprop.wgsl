// Rprop (torch.optim.Rprop; Riedmiller & Braun 1993), VEC4_PER_INVOCATION vec4s per
// invocation, skipped when the step state says so; the order of operations is PyTorch's
// single-tensor loop:
//   g ← effective_grad(g);  g ← −g if maximize
//   f ← etaplus where g·prev > 0, etaminus where g·prev < 0, 1 where it is 0 (NaN: NaN)
//   s ← clamp(s·f, min, max)       (min(max(·, min), max), NaN kept: torch.clamp)
//   g ← 0 where g·prev < 0;  p ← p + (−sign(g)·s);  prev ← g
// Every operation is exact or one rounding, as in the reference. The twin of
// reference::rprop.
//
// State slots 0, 1: prev, step_size (starting at lr), through load_state / store_state.
// @binding(6) groups: one Rprop per parameter group (struct generated from RpropUniform)

// torch.sign: −1, 0 or 1, NaN for NaN.
fn torch_sign(x: vec4<f32>) -> vec4<f32> {
    let zero = vec4<f32>(0.0);
    let s = select(select(zero, vec4<f32>(-1.0), x < zero), vec4<f32>(1.0), x > zero);
    return select(s, x, is_nan4(x));
}

fn update(i: u32, at: At, block: u32, group: u32, u: Rprop) {
    let p0 = load_param(at.p);
    let g = signed_decayed(rule_grad(at.g, block), p0, u.maximize, 0.0);
    let prev0 = load_state(0u, i);
    let size0 = load_state(1u, i);
    let product = g * prev0;
    let flipped = product < vec4<f32>(0.0);
    var factor = select(vec4<f32>(1.0), vec4<f32>(u.etaminus), flipped);
    factor = select(factor, vec4<f32>(u.etaplus), product > vec4<f32>(0.0));
    factor = select(factor, product, is_nan4(product));
    let grown = size0 * factor;
    let bounded = min(max(grown, vec4<f32>(u.step_size_min)), vec4<f32>(u.step_size_max));
    let size = select(bounded, grown, is_nan4(grown));
    let applied = select(g, vec4<f32>(0.0), flipped);
    store_state(0u, i, select(prev0, applied, at.live));
    store_state(1u, i, select(size0, size, at.live));
    store_param(at.p, select(p0, p0 + (-torch_sign(applied) * size), at.live));
}
