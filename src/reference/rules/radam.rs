//! RAdam in f32 (its step scalars in f64), the twin of `shaders/rules/radam.wgsl` and of
//! PyTorch's `_single_tensor_radam` on CPU.

use crate::reference::{adam_decay, adam_moments, bias_correction, TensorStep};

/// RAdam's rectification at step `step` for β2, as PyTorch computes it in f64: `None` while
/// `ρt ≤ 5` (the plain momentum step), else `r` with
/// ```text
/// ρ∞ = 2 / (1 − β2) − 1;   ρt = ρ∞ − 2t·β2^t / (1 − β2^t)
/// r = sqrt((ρt − 4)(ρt − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρt))
/// ```
pub fn radam_rectification(beta2: f64, step: u32) -> Option<f64> {
    let t = f64::from(step);
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rho_t = rho_inf - 2.0 * t * beta2.powf(t) / bias_correction(beta2, step);
    (rho_t > 5.0).then(|| {
        ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .sqrt()
    })
}

/// One `torch.optim.RAdam` step over one tensor (`step` = 1 on the first), its states by
/// slot `exp_avg` (`m`) and `exp_avg_sq` (`v`):
/// ```text
/// g ← −g if maximize
/// decoupled: p ← p·(1 − lr·weight_decay)    else: g ← g + weight_decay·p
/// m ← lerp(m, g, 1 − β1);   v ← v·β2 + (1 − β2)·g·g
/// r = radam_rectification(β2, step):
///   Some(r): p ← p − ((m / bc1)·lr · ((1 / (sqrt(v) + eps))·sqrt(bc2)))·r
///   None:    p ← p − (m / bc1)·lr
/// ```
/// `bc_k = 1 − β_k^step`, `sqrt(bc2)`, `r`, `1 − β` and `1 − lr·weight_decay` in f64, then
/// rounded (PyTorch's Python floats); PyTorch's `float / tensor` is `reciprocal(tensor)·float`.
#[allow(clippy::too_many_arguments)]
pub fn radam(
    t: TensorStep<'_>, step: u32, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64,
    decoupled_weight_decay: bool, maximize: bool,
) {
    let (params, grads, [exp_avg, exp_avg_sq]) = t.kept("RAdam");
    let (b1, b2) = betas;
    let bc1 = bias_correction(b1, step) as f32;
    let bc2_sqrt = bias_correction(b2, step).sqrt() as f32;
    let rect = radam_rectification(b2, step).map(|r| r as f32);
    let (one_minus_b1, beta2, one_minus_b2) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32);
    let (lr32, eps, wd) = (lr as f32, eps as f32, weight_decay as f32);
    let decay_factor = (1.0 - lr * weight_decay) as f32;
    for i in 0..params.len() {
        let (g, p) = adam_decay(
            grads[i],
            params[i],
            maximize,
            wd,
            decay_factor,
            decoupled_weight_decay,
        );
        let (m, v) = adam_moments(
            &mut exp_avg[i],
            &mut exp_avg_sq[i],
            g,
            one_minus_b1,
            beta2,
            one_minus_b2,
        );
        let mut update = m / bc1 * lr32;
        if let Some(r) = rect {
            update = update * ((1.0 / (v.sqrt() + eps)) * bc2_sqrt) * r;
        }
        params[i] = p - update;
    }
}
