//! The step state: the twin of `shaders/norm_finalize.wgsl`.

use super::norm::{root, PowerSum};
use crate::{consts::CLIP_EPS, Nonfinite, Norm};

/// What the finalize pass writes to the device step state (`struct StepState` in
/// `shaders/common.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepState {
    /// Total norm of the unscaled gradient `g / grad_scale`.
    pub total_norm: f32,
    /// `min(1, max_norm / (total_norm + 1e-6))`, or 1 without a norm clip.
    pub clip_coef: f32,
    /// Some gradient was NaN/±Inf or the total norm overflowed.
    pub nonfinite: bool,
    /// The update was skipped (non-finite under `Skip` or `Error`).
    pub skipped: bool,
    /// Optimizer steps taken (advanced only by steps that were not skipped).
    pub step: u32,
    /// `1 - β1^step` (1 when bias correction is off or not Adam).
    pub bias_correction1: f32,
    /// `1 - β2^step`.
    pub bias_correction2: f32,
}

impl Default for StepState {
    fn default() -> Self {
        StepState {
            total_norm: 0.0,
            clip_coef: 1.0,
            nonfinite: false,
            skipped: false,
            step: 0,
            bias_correction1: 1.0,
            bias_correction2: 1.0,
        }
    }
}

/// The inputs of one finalize.
#[derive(Clone, Copy, Debug)]
pub struct FinalizeInput {
    /// Power sum over all gradients; `None` when the step computes no norm (no norm
    /// clip under `Nonfinite::Propagate`): the total norm is then NaN and nothing is flagged.
    pub sum: Option<PowerSum>,
    /// Norm type of `sum`.
    pub norm: Norm,
    /// `Some(max_norm)` when the step clips by norm.
    pub max_norm: Option<f32>,
    /// `1 / grad_scale`.
    pub inv_grad_scale: f32,
    /// Non-finite policy.
    pub policy: Nonfinite,
    /// Whether this pass advances the optimizer step count.
    pub count_step: bool,
    /// `Some((β1, β2))` for Adam with bias correction.
    pub betas: Option<(f32, f32)>,
}

/// `min(1, max_norm / (total_norm + 1e-6))` in f32; NaN when the norm is NaN (PyTorch
/// multiplies the gradients by it anyway).
pub fn clip_coef(total_norm: f32, max_norm: f32) -> f32 {
    if total_norm.is_nan() {
        return f32::NAN;
    }
    (max_norm / (total_norm + CLIP_EPS)).min(1.0)
}

/// Folds the power sum into the next step state, given the previous one.
pub fn finalize(prev: &StepState, input: &FinalizeInput) -> StepState {
    let (total_norm, nonfinite) = match input.sum {
        Some(sum) => {
            let total = (root(sum, input.norm) as f32) * input.inv_grad_scale;
            (total, sum.has_nan || sum.has_inf || !total.is_finite())
        }
        None => (f32::NAN, false),
    };
    let clip_coef = match (input.sum, input.max_norm) {
        (Some(_), Some(max_norm)) => clip_coef(total_norm, max_norm),
        _ => 1.0,
    };
    let skipped = nonfinite && input.policy != Nonfinite::Propagate;
    let step = if input.count_step && !skipped {
        prev.step + 1
    } else {
        prev.step
    };
    let (bias_correction1, bias_correction2) = match input.betas {
        Some((b1, b2)) => (
            (1.0 - f64::from(b1).powi(step as i32)) as f32,
            (1.0 - f64::from(b2).powi(step as i32)) as f32,
        ),
        None => (1.0, 1.0),
    };
    StepState {
        total_norm,
        clip_coef,
        nonfinite,
        skipped,
        step,
        bias_correction1,
        bias_correction2,
    }
}
