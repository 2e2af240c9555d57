//! Clipping: the twins of `shaders/scale.wgsl`, `shaders/clamp.wgsl` and of
//! `effective_grad` in `shaders/common.wgsl`.

use super::norm::{power_sum, root, PowerSum};
use super::step_state::clip_coef;
use crate::Norm;

/// `clamp(x, -c, c)`, but NaN stays NaN (as `torch.clamp`).
pub fn clamp_keep_nan(x: f32, c: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.clamp(-c, c)
    }
}

/// How a fused update turns the stored gradient into the one it applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradTransform {
    /// `1 / grad_scale` (mixed-precision unscale).
    pub inv_grad_scale: f32,
    /// The clip coefficient from the step state (1 without a norm clip).
    pub clip_coef: f32,
    /// `Some(c)`: clamp to `[-c, c]` after the norm clip.
    pub clip_value: Option<f32>,
}

/// `clamp((g · inv_grad_scale) · clip_coef, -c, c)`, in that order.
pub fn effective_grad(g: f32, t: &GradTransform) -> f32 {
    let g = g * t.inv_grad_scale * t.clip_coef;
    match t.clip_value {
        Some(c) => clamp_keep_nan(g, c),
        None => g,
    }
}

/// PyTorch `clip_grad_norm_`: scales every gradient in place by
/// `min(1, max_norm / (‖g‖ + 1e-6))` and returns the total norm `‖g‖`.
pub fn clip_grad_norm(tensors: &mut [&mut [f32]], max_norm: f32, norm: Norm) -> f32 {
    let sum = tensors
        .iter()
        .map(|t| power_sum(t, norm))
        .fold(PowerSum::default(), |a, b| a.combine(b, norm));
    let total = root(sum, norm) as f32;
    let coef = clip_coef(total, max_norm);
    for t in tensors.iter_mut() {
        for x in t.iter_mut() {
            *x *= coef;
        }
    }
    total
}

/// PyTorch `clip_grad_value_`: `g ← clamp(g, -clip_value, clip_value)` in place.
pub fn clip_grad_value(tensors: &mut [&mut [f32]], clip_value: f32) {
    for t in tensors.iter_mut() {
        for x in t.iter_mut() {
            *x = clamp_keep_nan(*x, clip_value);
        }
    }
}

/// Per-tensor clipping: each tensor scaled by `min(1, max_norm / (‖t‖ + 1e-6))` in place;
/// returns the norms before clipping.
pub fn clip_grad_norm_per_tensor(
    tensors: &mut [&mut [f32]],
    max_norm: f32,
    norm: Norm,
) -> Vec<f32> {
    tensors
        .iter_mut()
        .map(|t| {
            let n = root(power_sum(t, norm), norm) as f32;
            let coef = clip_coef(n, max_norm);
            t.iter_mut().for_each(|x| *x *= coef);
            n
        })
        .collect()
}
