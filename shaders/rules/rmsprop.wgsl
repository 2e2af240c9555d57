// RMSprop (torch.optim.RMSprop), VEC4_PER_INVOCATION vec4s per invocation, skipped when the
// step state says so; the order of operations is PyTorch's single-tensor loop:
//   g ← effective_grad(g);  g ← −g if maximize;  g ← g + wd·p
//   s ← s·α + (1 − α)·g·g
//   centered: a ← lerp(a, g, 1 − α); avg ← sqrt(s + (−a)·a) + eps    else avg ← sqrt(s) + eps
//   momentum μ > 0: b ← b·μ + g / avg; p ← p + (−lr)·b               else p ← p + (−lr)·g / avg
// 1 − α is computed in f64 on the host. No fma: each product feeding a sum is
// rounded on its own (`exact`, update.wgsl), as in the reference. The twin of reference::rmsprop.
//
// @binding(2) square_avg  @binding(3) grad_avg  @binding(4) momentum_buffer
// @binding(6) groups: one RmsProp per parameter group
// @binding(0) params  @binding(1) grads  @binding(5) state  @binding(7) slab  @binding(8) blocks
// (update.wgsl); in a pool, @binding(10) places (locate_pooled.wgsl). States are indexed
// by the virtual vec4 i, params and grads at `at`.

fn update(i: u32, at: At, block: u32, group: u32, u: RmsProp) {
    let p0 = load_param(at.p);
    let g = signed_decayed(rule_grad(at.g, block), p0, u.maximize, u.weight_decay);
    let s0 = load_state(0u, i);
    let s = exact(s0 * u.alpha) + exact(exact(u.one_minus_alpha * g) * g);
    store_state(0u, i, select(s0, s, at.live));
    var avg: vec4<f32>;
    if CENTERED && u.centered != 0u {
        let a0 = load_state(1u, i);
        let a = torch_lerp(a0, g, u.one_minus_alpha);
        store_state(1u, i, select(a0, a, at.live));
        avg = sqrt_rn(s + exact((-a) * a)) + u.eps;
    } else {
        avg = sqrt_rn(s) + u.eps;
    }
    if MOMENTUM && u.momentum > 0.0 {
        let b0 = load_state(2u, i);
        let b = exact(b0 * u.momentum) + div_rn(g, avg);
        store_state(2u, i, select(b0, b, at.live));
        store_param(at.p, select(p0, p0 + exact(u.neg_lr * b), at.live));
    } else {
        store_param(at.p, select(p0, p0 + div_rn(u.neg_lr * g, avg), at.live));
    }
}
