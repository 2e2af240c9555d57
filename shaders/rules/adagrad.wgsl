// Adagrad (torch.optim.Adagrad), VEC4_PER_INVOCATION vec4s per invocation, skipped when the
// step state says so; the order of operations is PyTorch's single-tensor loop:
//   g ← effective_grad(g);  g ← −g if maximize;  g ← g + wd·p
//   clr ← lr / (1 + (step − 1)·lr_decay)
//   s ← s + g·g
//   p ← p + (−clr)·g / (sqrt(s) + eps)
// clr is computed here in f32 from the step the finalize counted (PyTorch: a Python float,
// rounded when used; with lr_decay = 0 both are lr exactly). The twin of reference::adagrad.
//
// @binding(2) state_sum  @binding(6) groups: one Adagrad per parameter group
// @binding(0) params  @binding(1) grads  @binding(5) state  @binding(7) slab  @binding(8) blocks
// (update.wgsl); in a pool, @binding(10) places (locate_pooled.wgsl). States are indexed
// by the virtual vec4 i, params and grads at `at`.

fn update(i: u32, at: At, block: u32, group: u32, u: Adagrad) {
    let p0 = load_param(at.p);
    let g = signed_decayed(rule_grad(at.g, block), p0, u.maximize, u.weight_decay);
    let sum0 = load_state(0u, i);
    let sum = sum0 + exact(g * g);
    store_state(0u, i, select(sum0, sum, at.live));
    let clr = div_rn1(u.lr, 1.0 + exact1(f32(state.step - 1u) * u.lr_decay));
    store_param(at.p, select(p0, p0 + div_rn((-clr) * g, sqrt_rn(sum) + u.eps), at.live));
}
