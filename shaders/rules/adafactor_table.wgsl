// Adafactor's helpers shared by all its kernels (factor_partials, factor_fold,
// factor_means, the trust pass, the fold and the update): where each tensor's states live,
// the step's β2 weight and ATen's lerp. `groups` (binding 6, struct Adafactor) is
// generated; every kernel that includes this declares the step state at binding 5.
//
// @binding(20) factor_tensors: per tensor, its FactorTensor (src/storage/factored.rs)

@group(0) @binding(20) var<storage, read> factor_tensors: array<FactorTensor>;

// PyTorch's one_minus_beta2_t = t^beta2_decay of this step, for group `group`.
fn step_weight(group: u32) -> f32 {
    return pow(f32(state.step), groups[group].beta2_decay);
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
