// Adafactor (Shazeer & Stern 2018; torch.optim.Adafactor), VEC4_PER_INVOCATION vec4s per
// invocation, after its trust pass; skipped when the step state says so:
//   u = g·rsqrt(max(v̂, eps1²));  p ← p·(1 − lr·weight_decay) + u·ratio_t
// ratio_t = −max(eps2, ‖p_t‖/√n)·min(lr, 1/√t) / max(1, ‖u_t‖/(√n·d)) (adafactor_ratio.wgsl,
// from the trust pass's sums; ‖p_t‖ before the decay). The twin of reference::adafactor.
//
// @binding(11) ratios  @binding(12) block_tensor  (and adafactor_table.wgsl,
// adafactor_direction.wgsl, update.wgsl);
// the states at 2-4 and 22; params and grads through the access part, at `at`.

@group(0) @binding(11) var<storage, read> ratios: array<f32>;
@group(0) @binding(12) var<storage, read> block_tensor: array<u32>;

fn update(i: u32, at: At, block: u32, group: u32, u: Adafactor) {
    let p0 = load_param(at.p);
    let t = block_tensor[i / BLOCK_VEC4S];
    let g0 = rule_grad(at.g, block);
    let g = select(g0, -g0, u.maximize != 0u);
    let d = adafactor_direction(i, g, factor_tensors[t], u);
    let p = exact(p0 * u.decay) + exact(d * ratios[t]);
    store_param(at.p, select(p0, p, at.live));
}
