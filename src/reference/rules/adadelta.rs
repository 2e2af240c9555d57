//! Adadelta in f32, the twin of `shaders/rules/adadelta.wgsl` and of PyTorch's
//! `_single_tensor_adadelta` on CPU.

use crate::reference::{signed_decayed, TensorStep};

/// One `torch.optim.Adadelta` step over one tensor, its states by slot `square_avg` (`v`)
/// and `acc_delta` (`u`):
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// v ← v·ρ + (1 − ρ)·g·g
/// Δ ← sqrt(u + eps) / sqrt(v + eps) · g
/// u ← u·ρ + (1 − ρ)·Δ·Δ
/// p ← p + (−lr)·Δ
/// ```
/// `1 − ρ` in f64, rounded once (PyTorch's Python float); each product and quotient in f32
/// in PyTorch's order (`addcmul`: `v + ((1 − ρ)·g)·g`; `div_` then `mul_`).
pub fn adadelta(t: TensorStep<'_>, lr: f64, rho: f64, eps: f64, weight_decay: f64, maximize: bool) {
    let (params, grads, [square_avg, acc_delta]) = t.kept("Adadelta");
    let (neg_lr, rho, one_minus_rho) = (-lr as f32, rho as f32, (1.0 - rho) as f32);
    let (eps, wd) = (eps as f32, weight_decay as f32);
    for i in 0..params.len() {
        let p = params[i];
        let g = signed_decayed(grads[i], p, maximize, wd);
        let v = square_avg[i] * rho + one_minus_rho * g * g;
        let delta = (acc_delta[i] + eps).sqrt() / (v + eps).sqrt() * g;
        square_avg[i] = v;
        acc_delta[i] = acc_delta[i] * rho + one_minus_rho * delta * delta;
        params[i] = p + neg_lr * delta;
    }
}
