// Clip by value in place (torch clip_grad_value_), VEC4_PER_INVOCATION vec4s per invocation:
//   g_i ← clamp(g_i, -clip_value, clip_value)      NaN stays NaN
//
// @binding(0) grads  this slab (grads_rw_f32.wgsl, or grads_rw_half.wgsl for 16 bits)
// @binding(1) op     NormOp (clip_value)
// @binding(2) slab   Slab (len, pooled)
// @binding(10) places Place per block, in a pool (locate_pooled.wgsl)

@group(0) @binding(1) var<uniform> op: NormOp;
@group(0) @binding(2) var<uniform> slab: Slab;

fn enabled() -> bool {
    return true;
}

fn apply(i: u32, at: At) {
    let g = load_grad(at.g);
    store_grad(at.g, select(g, clamp_keep_nan(g, op.clip_value), at.live));
}
