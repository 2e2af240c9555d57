//! Adagrad in f32, the twin of `shaders/adagrad.wgsl` and of PyTorch's
//! `_single_tensor_adagrad` on CPU.

use crate::reference::{signed_decayed, TensorStep};

/// Adagrad's learning rate at step `step` (1 on the first): `lr / (1 + (step − 1)·lr_decay)`,
/// in f32 as the shader computes it (PyTorch computes it in f64 and rounds it when used;
/// with `lr_decay = 0` both give `lr` exactly).
pub fn adagrad_clr(lr: f32, lr_decay: f32, step: u32) -> f32 {
    lr / (1.0 + step.saturating_sub(1) as f32 * lr_decay)
}

/// One `torch.optim.Adagrad` step over one tensor; its state slot 0, `state_sum`, starts at
/// `initial_accumulator_value`.
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// s ← s + g·g
/// p ← p − clr·g / (sqrt(s) + eps)      clr = lr / (1 + (step − 1)·lr_decay)
/// ```
pub fn adagrad(
    t: TensorStep<'_>, step: u32, lr: f64, lr_decay: f64, weight_decay: f64, eps: f64,
    maximize: bool,
) {
    let (params, grads, [state_sum]) = t.kept("Adagrad");
    let neg_clr = -adagrad_clr(lr as f32, lr_decay as f32, step);
    let (wd, eps) = (weight_decay as f32, eps as f32);
    for i in 0..params.len() {
        let p = params[i];
        let g = signed_decayed(grads[i], p, maximize, wd);
        let s = state_sum[i] + g * g;
        state_sum[i] = s;
        params[i] = p + neg_clr * g / (s.sqrt() + eps);
    }
}
