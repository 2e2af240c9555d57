//! LARS and LAMB in f32 with their trust ratios, the twins of `shaders/lars*.wgsl`,
//! `shaders/lamb*.wgsl` and `shaders/trust_fold.wgsl`, and of Optax's `lars` and `lamb`
//! (`scale_by_trust_ratio`). One call is one tensor: the ratio is per tensor.

use super::optim::bias_correction;
use super::TensorStep;

/// The L2 norm of `x`, accumulated in f64 and rounded.
fn l2(x: &[f32]) -> f32 {
    x.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32
}

/// Optax's `scale_by_trust_ratio` factor of one tensor: `(trust_coefficient·‖p‖) / (‖u‖ + eps)`,
/// or 1 when `‖p‖ = 0` or `‖u‖ = 0`.
pub fn trust_ratio(params: &[f32], update: &[f32], trust_coefficient: f32, eps: f32) -> f32 {
    let (p, u) = (l2(params), l2(update));
    if p == 0.0 || u == 0.0 {
        1.0
    } else {
        trust_coefficient * p / (u + eps)
    }
}

/// One `optax.lars` step over one tensor, its state slot 0 (`momentum_buffer`) being Optax's
/// `trace`:
/// ```text
/// u ← g + weight_decay·p;  u ← u·trust_ratio(p, u) if trust;  u ← u·(−lr)
/// b ← u + momentum·b;      p ← p + (u + momentum·b if nesterov, else b)
/// ```
#[allow(clippy::too_many_arguments)]
pub fn lars(
    t: TensorStep<'_>, lr: f64, weight_decay: f64, trust_coefficient: f64, eps: f64, trust: bool,
    momentum: f64, nesterov: bool,
) {
    let (params, grads, [momentum_buffer]) = t.kept("LARS");
    let (neg_lr, wd, mu) = (-lr as f32, weight_decay as f32, momentum as f32);
    let d: Vec<f32> = params
        .iter()
        .zip(grads)
        .map(|(&p, &g)| g + wd * p)
        .collect();
    let ratio = trust.then(|| trust_ratio(params, &d, trust_coefficient as f32, eps as f32));
    for i in 0..params.len() {
        let u = ratio.map_or(d[i], |r| d[i] * r) * neg_lr;
        let b = u + mu * momentum_buffer[i];
        momentum_buffer[i] = b;
        params[i] += if nesterov { u + mu * b } else { b };
    }
}

/// One `optax.lamb` step over one tensor (`step` = 1 on the first), its states by slot
/// `exp_avg` (`m`) and `exp_avg_sq` (`v`):
/// ```text
/// m ← (1 − β1)·g + β1·m;  v ← (1 − β2)·g² + β2·v
/// u ← (m / bc1) / (sqrt(v / bc2 + eps_root) + eps) + weight_decay·p      bc_k = 1 − β_k^step
/// p ← p + (u·trust_ratio(p, u))·(−lr)
/// ```
pub fn lamb(
    t: TensorStep<'_>, step: u32, lr: f64, betas: (f64, f64), eps: f64, eps_root: f64,
    weight_decay: f64,
) {
    let (params, grads, [exp_avg, exp_avg_sq]) = t.kept("LAMB");
    let (b1, one_minus_b1) = (betas.0 as f32, (1.0 - betas.0) as f32);
    let (b2, one_minus_b2) = (betas.1 as f32, (1.0 - betas.1) as f32);
    let bc1 = bias_correction(betas.0, step) as f32;
    let bc2 = bias_correction(betas.1, step) as f32;
    let (eps, eps_root, wd, neg_lr) =
        (eps as f32, eps_root as f32, weight_decay as f32, -lr as f32);
    let mut d = Vec::with_capacity(params.len());
    for i in 0..params.len() {
        let g = grads[i];
        let m = one_minus_b1 * g + b1 * exp_avg[i];
        let v = one_minus_b2 * (g * g) + b2 * exp_avg_sq[i];
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        d.push((m / bc1) / ((v / bc2 + eps_root).sqrt() + eps) + wd * params[i]);
    }
    let ratio = trust_ratio(params, &d, 1.0, 0.0);
    for (p, u) in params.iter_mut().zip(d) {
        *p += (u * ratio) * neg_lr;
    }
}
