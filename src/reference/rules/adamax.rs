//! The reference of `shaders/rules/adamax.wgsl`: `torch.optim.Adamax`'s single-tensor loop.

use crate::reference::{bias_correction, signed_decayed, torch_lerp, TensorStep};

/// `torch.maximum`: the larger of `a` and `b`, NaN when either is NaN.
fn maximum_keep_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        a + b
    } else {
        a.max(b)
    }
}

/// One `torch.optim.Adamax` step over one tensor (`step` = 1 on the first), its states by
/// slot `exp_avg` (`m`) and `exp_inf` (`u`).
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// m ← lerp(m, g, 1 − β1);   u ← max(u·β2, |g| + eps)
/// p ← p + (−lr / (1 − β1^t))·m / u
/// ```
/// `lr / (1 − β1^t)` in f64, then rounded (PyTorch's Python floats), each product and
/// quotient in f32 in PyTorch's order (`addcdiv`: `p + (value·m) / u`).
pub fn adamax(
    t: TensorStep<'_>, step: u32, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64,
    maximize: bool,
) {
    let (params, grads, [exp_avg, exp_inf]) = t.kept("Adamax");
    let neg_clr = -(lr / bias_correction(betas.0, step)) as f32;
    let (one_minus_b1, beta2) = ((1.0 - betas.0) as f32, betas.1 as f32);
    let (eps, wd) = (eps as f32, weight_decay as f32);
    for i in 0..params.len() {
        let g = signed_decayed(grads[i], params[i], maximize, wd);
        let m = torch_lerp(exp_avg[i], g, one_minus_b1);
        let u = maximum_keep_nan(exp_inf[i] * beta2, g.abs() + eps);
        exp_avg[i] = m;
        exp_inf[i] = u;
        params[i] += neg_clr * m / u;
    }
}
