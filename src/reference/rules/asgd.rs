//! ASGD in f32, the twin of `shaders/rules/asgd.wgsl` and of PyTorch's
//! `_single_tensor_asgd` on CPU.

use crate::optim::rules::AsgdConfig;
use crate::reference::{signed_decayed, TensorStep};

/// ASGD's `(η, μ)` at step `step` (1 on the first): the values PyTorch's `eta` and `mu`
/// hold after step `step − 1`, in f32 as the shader computes them (PyTorch: f64, rounded to
/// f32; a few ulp apart):
/// ```text
/// η = lr / (1 + λlr·(step − 1))^α;   μ = 1 / max(1, step − 1 − t0)
/// ```
pub fn asgd_schedule(config: &AsgdConfig, step: u32) -> (f32, f32) {
    let before = step.saturating_sub(1) as f32;
    let lambd_lr = (config.lambd * config.lr) as f32;
    let base: f32 = 1.0 + lambd_lr * before;
    let eta = config.lr as f32 / base.powf(config.alpha as f32);
    // Python's max(1, d): 1 unless d > 1 (a NaN t0 gives 1, not NaN).
    let since = before - config.t0 as f32;
    let mu = if since > 1.0 { 1.0 / since } else { 1.0 };
    (eta, mu)
}

/// One `torch.optim.ASGD` step over one tensor, its state slot 0 `ax` (the averaged
/// parameters):
/// ```text
/// (η, μ) = asgd_schedule(config, step)
/// g ← −g if maximize;  g ← g + weight_decay·p
/// p ← p·(1 − λ·η) + (−η)·g
/// ax ← p if μ = 1, else ax + (p − ax)·μ
/// ```
pub fn asgd(t: TensorStep<'_>, step: u32, config: &AsgdConfig) {
    let (params, grads, [ax]) = t.kept("ASGD");
    let (eta, mu) = asgd_schedule(config, step);
    let decay = 1.0 - config.lambd as f32 * eta;
    let wd = config.weight_decay as f32;
    for i in 0..params.len() {
        let g = signed_decayed(grads[i], params[i], config.maximize, wd);
        let p = params[i] * decay + (-eta) * g;
        ax[i] = if mu != 1.0 {
            ax[i] + (p - ax[i]) * mu
        } else {
            p
        };
        params[i] = p;
    }
}
