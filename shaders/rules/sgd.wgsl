// SGD (torch.optim.SGD), VEC4_PER_INVOCATION vec4s per invocation, skipped when the step
// state says so; the order of operations is PyTorch's single-tensor loop:
//   g ← effective_grad(g);  g ← −g if maximize;  g ← g + wd·p
//   with momentum μ:  b ← g on the first step, else b·μ + (1 − dampening)·g
//                     g ← g + μ·b (nesterov) or b
//   p ← p + (−lr)·g
// No fma: each product feeding a sum is rounded on its own (`exact`, update.wgsl), as in
// the reference.
// The twin of reference::sgd.
//
// @binding(2) momentum_buffer  @binding(6) groups: one Sgd per parameter group
// (3 and 4 hold other rules' states)
// @binding(0) params  @binding(1) grads  @binding(5) state  @binding(7) slab  @binding(8) blocks
// (update.wgsl); in a pool, @binding(10) places (locate_pooled.wgsl). States are indexed
// by the virtual vec4 i, params and grads at `at`.

fn update(i: u32, at: At, block: u32, group: u32, u: Sgd) {
    let p0 = load_param(at.p);
    var g = signed_decayed(rule_grad(at.g, block), p0, u.maximize, u.weight_decay);
    if MOMENTUM && u.has_momentum_buffer != 0u {
        let b0 = load_state(0u, i);
        var b = g;
        if state.step != 1u {
            b = exact(b0 * u.momentum) + exact(u.one_minus_dampening * g);
        }
        store_state(0u, i, select(b0, b, at.live));
        if NESTEROV && u.nesterov != 0u {
            g = g + exact(u.momentum * b);
        } else {
            g = b;
        }
    }
    store_param(at.p, select(p0, p0 + exact(u.neg_lr * g), at.live));
}
