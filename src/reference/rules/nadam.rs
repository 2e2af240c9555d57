//! NAdam in f32 (its step scalars in f64), the twin of `shaders/rules/nadam.wgsl` and of
//! PyTorch's `_single_tensor_nadam` on CPU.

use crate::optim::rules::NAdamConfig;
use crate::reference::{adam_decay, adam_moments, bias_correction, TensorStep};

/// NAdam's momentum at step `t`: `μ_t = β1·(1 − 0.5·0.96^(t·ψ))`, in f64 (PyTorch's).
fn mu(beta1: f64, momentum_decay: f64, t: u32) -> f64 {
    beta1 * (1.0 - 0.5 * 0.96f64.powf(f64::from(t) * momentum_decay))
}

/// NAdam's update coefficients at step `step` (1 on the first), PyTorch's
/// `(1 − μ_t) / (1 − Π_t)` and `μ_{t+1} / (1 − Π_t·μ_{t+1})`, where Π_t = μ_1·…·μ_t is
/// PyTorch's `mu_product`: a running f32 product of the f32-rounded μ (`mu_product *= mu`),
/// the quotients in f64. The product stops once below 2^-54, where `1 − Π` (in f64) is 1:
/// the same coefficients, in a few dozen factors for the default schedule.
pub fn nadam_coefficients(beta1: f64, momentum_decay: f64, step: u32) -> (f64, f64) {
    let mut product = 1.0f32;
    for i in 1..=step {
        if f64::from(product) < f64::powi(2.0, -54) {
            product = 0.0;
            break;
        }
        product *= mu(beta1, momentum_decay, i) as f32;
    }
    let product = f64::from(product);
    let (mu_t, mu_next) = (
        mu(beta1, momentum_decay, step),
        mu(beta1, momentum_decay, step + 1),
    );
    (
        (1.0 - mu_t) / (1.0 - product),
        mu_next / (1.0 - product * mu_next),
    )
}

/// One `torch.optim.NAdam` step over one tensor (`step` = 1 on the first), its states by
/// slot `exp_avg` (`m`) and `exp_avg_sq` (`v`):
/// ```text
/// g ← −g if maximize
/// decoupled: p ← p·(1 − lr·weight_decay)    else: g ← g + weight_decay·p
/// m ← lerp(m, g, 1 − β1);   v ← v·β2 + (1 − β2)·g·g
/// d = sqrt(v / bc2) + eps                     bc2 = 1 − β2^step
/// (c_g, c_m) = nadam_coefficients(β1, momentum_decay, step)
/// p ← p + ((−lr·c_g)·g) / d;   p ← p + ((−lr·c_m)·m) / d
/// ```
/// `−lr·c` in f64 then rounded (PyTorch's `addcdiv` values), the rest in f32.
pub fn nadam(t: TensorStep<'_>, step: u32, config: &NAdamConfig) {
    let (params, grads, [exp_avg, exp_avg_sq]) = t.kept("NAdam");
    let (b1, b2) = config.betas;
    let (c_g, c_m) = nadam_coefficients(b1, config.momentum_decay, step);
    let (value_g, value_m) = ((-config.lr * c_g) as f32, (-config.lr * c_m) as f32);
    let bc2 = bias_correction(b2, step) as f32;
    let (one_minus_b1, beta2, one_minus_b2) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32);
    let (eps, wd) = (config.eps as f32, config.weight_decay as f32);
    let decoupled = config.decoupled_weight_decay;
    let decay_factor = (1.0 - config.lr * config.weight_decay) as f32;
    for i in 0..params.len() {
        let (g, mut p) = adam_decay(
            grads[i],
            params[i],
            config.maximize,
            wd,
            decay_factor,
            decoupled,
        );
        let (m, v) = adam_moments(
            &mut exp_avg[i],
            &mut exp_avg_sq[i],
            g,
            one_minus_b1,
            beta2,
            one_minus_b2,
        );
        let denom = (v / bc2).sqrt() + eps;
        p += value_g * g / denom;
        p += value_m * m / denom;
        params[i] = p;
    }
}
