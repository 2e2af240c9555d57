// Clip by norm, applied in place (torch clip_grads_with_norm_), VEC4_PER_INVOCATION vec4s
// per invocation:
//   g_i ← g_i · clip_coef          (clip_coef from the step state the finalize pass wrote;
//                                    a NaN g_i becomes 0 under the ZeroNans policy)
// A skipped state (non-finite under Skip/Error) leaves g untouched.
//
// @binding(0) grads  this slab (grads_rw_f32.wgsl, or grads_rw_half.wgsl for 16 bits)
// @binding(1) state  StepState
// @binding(2) slab   Slab (len, pooled)
// @binding(10) places Place per block, in a pool (locate_pooled.wgsl)

@group(0) @binding(1) var<uniform> state: StepState;
@group(0) @binding(2) var<uniform> slab: Slab;

fn enabled() -> bool {
    return state.skipped == 0u;
}

fn apply(i: u32, at: At) {
    let g = load_grad(at.g);
    let x = zero_nans_if(g, state.zero_nans != 0u);
    store_grad(at.g, select(g, x * state.clip_coef, at.live));
}
