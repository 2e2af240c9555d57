// Clip each tensor by its own norm, in place, g_i ← g_i · coef_t for i in tensor t, with
//   PER_TENSOR_NORM:      coef_t = min(1, max_norm / (‖g_t‖ + CLIP_EPS))     (PyTorch, per tensor)
//   PER_TENSOR_BLOCK_RMS: coef_t = 1 / max(1, (‖g_t‖₂ / sqrt(n_t)) / max_norm)   (Optax clip_by_block_rms)
// (NaN if ‖g_t‖ is NaN).
// ‖g_t‖ comes from tensor_norms, written by the finalize pass of the same recording.
// A NaN g_i becomes 0 under the ZeroNans policy.
// Workgroup w scales chunk row w of this slab (a chunk lies in one tensor); a skipped step
// state (non-finite under Skip/Error) leaves every gradient untouched.
//
// @binding(0) grads        this slab (grads_rw_f32.wgsl, or grads_rw_half.wgsl for 16 bits)
// @binding(1) chunks       this slab's chunk table
// @binding(2) tensor_norms one f32 per tensor
// @binding(3) state        StepState (skipped)
// @binding(4) op           NormOp (max_norm)
// @binding(5) slab         Slab (len, num_chunks)
// @binding(6) sqrt_numel   sqrt(n_t) per tensor

@group(0) @binding(1) var<storage, read> chunks: array<Chunk>;
@group(0) @binding(2) var<storage, read> tensor_norms: array<f32>;
@group(0) @binding(3) var<uniform> state: StepState;
@group(0) @binding(4) var<uniform> op: NormOp;
@group(0) @binding(5) var<uniform> slab: Slab;
@group(0) @binding(6) var<storage, read> sqrt_numel: array<f32>;

// The factor of tensor t, once per workgroup (a uniform choice outside the loop).
fn coef_of(t: u32) -> f32 {
    let norm = tensor_norms[t];
    if op.per_tensor == PER_TENSOR_BLOCK_RMS && !is_nan(norm) {
        return 1.0 / max(1.0, norm / sqrt_numel[t] / op.max_norm);
    }
    return clip_coef(norm, op.max_norm);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if row >= slab.num_chunks || state.skipped != 0u {
        return;
    }
    let chunk = chunks[row];
    let coef = coef_of(chunk.tensor);
    let end = chunk.start + chunk.len;
    for (var e = chunk.start + lid * 4u; e < end; e += WORKGROUP_SIZE * 4u) {
        let g = load_grad(e / 4u);
        let x = zero_nans_if(g, state.zero_nans != 0u);
        store_grad(e / 4u, select(g, x * coef, lanes_before(e, end)));
    }
}
