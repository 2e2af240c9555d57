// Adafactor's helpers shared by all its kernels (factor_partials, factor_fold,
// factor_means, the trust pass, the fold and the update): where each tensor's states live,
// the step's β2 weight and ATen's lerp. `groups` (binding 6, struct Adafactor) is
// generated.
//
// @binding(9)  group_bias: per group, (1, 1, t^beta2_decay, 0) from the finalize
// @binding(20) factor_tensors: per tensor, its FactorTensor (src/storage/factored.rs)

@group(0) @binding(9) var<storage, read> group_bias: array<vec4<f32>>;
@group(0) @binding(20) var<storage, read> factor_tensors: array<FactorTensor>;

// PyTorch's one_minus_beta2_t = t^beta2_decay of this step, for group `group` (computed
// once per group by the finalize: SCHEDULE_ADAFACTOR).
fn step_weight(group: u32) -> f32 {
    return group_bias[group].z;
}

// ATen's lerp: a + w·(b − a) for |w| < 0.5, else b − (b − a)·(1 − w).
fn aten_lerp(a: f32, b: f32, w: f32) -> f32 {
    if abs(w) < 0.5 {
        return a + w * (b - a);
    }
    return b - (b - a) * (1.0 - w);
}

fn aten_lerp4(a: vec4<f32>, b: vec4<f32>, w: f32) -> vec4<f32> {
    if abs(w) < 0.5 {
        return a + w * (b - a);
    }
    return b - (b - a) * (1.0 - w);
}
