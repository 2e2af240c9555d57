//! Clipping: the twins of `shaders/scale.wgsl`, `shaders/scale_per_tensor.wgsl`,
//! `shaders/clamp.wgsl`, and of `clip_coef` / `effective_grad` in `shaders/common.wgsl`.

use super::norm::{global_norm, per_tensor_norms};
use crate::consts::CLIP_EPS;

/// `min(1, max_norm / (total_norm + 1e-6))` in f32 (PyTorch `clip_grads_with_norm_`'s
/// `clip_coef_clamped`); NaN when the norm is NaN (PyTorch multiplies by it anyway).
pub fn clip_coef(total_norm: f32, max_norm: f32) -> f32 {
    if total_norm.is_nan() {
        return f32::NAN;
    }
    (max_norm / (total_norm + CLIP_EPS)).min(1.0)
}

/// `clamp(x, -c, c)`, but NaN stays NaN (as `torch.clamp`).
pub fn clamp_keep_nan(x: f32, c: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.clamp(-c, c)
    }
}

/// The gradient a fused update applies: `clamp((g · inv_grad_scale) · clip_coef, -c, c)`,
/// in that order (`clip_value: None`: no clamp).
pub fn effective_grad(g: f32, inv_grad_scale: f32, clip_coef: f32, clip_value: Option<f32>) -> f32 {
    let g = g * inv_grad_scale * clip_coef;
    match clip_value {
        Some(c) => clamp_keep_nan(g, c),
        None => g,
    }
}

/// PyTorch `clip_grads_with_norm_(tensors, max_norm, total_norm)`: scales every gradient
/// in place by `min(1, max_norm / (total_norm + 1e-6))`, a norm computed elsewhere.
pub fn clip_grads_with_norm(tensors: &mut [&mut [f32]], max_norm: f32, total_norm: f32) {
    let coef = clip_coef(total_norm, max_norm);
    for t in tensors.iter_mut() {
        t.iter_mut().for_each(|x| *x *= coef);
    }
}

/// PyTorch `clip_grad_norm_(tensors, max_norm, norm_type)`: the total norm `‖g‖`, then
/// [`clip_grads_with_norm`]; returns `‖g‖`.
pub fn clip_grad_norm(tensors: &mut [&mut [f32]], max_norm: f32, norm_type: f32) -> f32 {
    let views: Vec<&[f32]> = tensors.iter().map(|t| &**t).collect();
    let total = global_norm(&views, norm_type);
    clip_grads_with_norm(tensors, max_norm, total);
    total
}

/// PyTorch `clip_grad_value_(tensors, clip_value)`: `g ← clamp(g, -clip_value, clip_value)`.
pub fn clip_grad_value(tensors: &mut [&mut [f32]], clip_value: f32) {
    for t in tensors.iter_mut() {
        t.iter_mut()
            .for_each(|x| *x = clamp_keep_nan(*x, clip_value));
    }
}

/// Per-tensor clipping (`clip_grad_norm_` called on each tensor alone): each tensor scaled
/// by `min(1, max_norm / (‖t‖ + 1e-6))` in place; returns the norms before clipping.
pub fn clip_grad_norm_per_tensor(
    tensors: &mut [&mut [f32]], max_norm: f32, norm_type: f32,
) -> Vec<f32> {
    let views: Vec<&[f32]> = tensors.iter().map(|t| &**t).collect();
    let norms = per_tensor_norms(&views, norm_type);
    for (t, &n) in tensors.iter_mut().zip(&norms) {
        clip_grads_with_norm(&mut [&mut **t], max_norm, n);
    }
    norms
}

/// Optax's `clip_by_block_rms(threshold)` factor for a tensor of `numel` elements and L2
/// norm `norm`: `1 / max(1, (norm / sqrt(numel)) / threshold)`, multiplied into every
/// element (Optax divides by the denominator: the two differ by at most an ulp); NaN for a
/// NaN norm. The twin of `scale_per_tensor.wgsl` under `PER_TENSOR_BLOCK_RMS`.
pub fn block_rms_coef(norm: f32, numel: usize, threshold: f32) -> f32 {
    if norm.is_nan() {
        return norm;
    }
    let rms = norm / (numel as f32).sqrt();
    1.0 / (rms / threshold).max(1.0)
}

/// Clip by block RMS (Optax's `clip_by_block_rms`): each tensor scaled in place by
/// [`block_rms_coef`] of its own L2 norm; returns the norms before clipping.
pub fn clip_by_block_rms(tensors: &mut [&mut [f32]], threshold: f32) -> Vec<f32> {
    let views: Vec<&[f32]> = tensors.iter().map(|t| &**t).collect();
    let norms = per_tensor_norms(&views, 2.0);
    for (t, &n) in tensors.iter_mut().zip(&norms) {
        let coef = block_rms_coef(n, t.len(), threshold);
        t.iter_mut().for_each(|x| *x *= coef);
    }
    norms
}
