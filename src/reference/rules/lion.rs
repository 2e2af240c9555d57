//! Lion in f32, the twin of `shaders/lion.wgsl` and of Optax's
//! `lion = chain(scale_by_lion, add_decayed_weights, scale_by_learning_rate)`.

use crate::reference::TensorStep;

/// `jnp.sign`: −1, 0 or 1, and NaN for NaN.
pub fn sign_keep_nan(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// One `optax.lion` step over one tensor, its state slot 0 (`exp_avg`) being Optax's `mu`:
/// ```text
/// u ← sign((1 − β1)·g + β1·m) + weight_decay·p
/// p ← p + (−lr)·u
/// m ← (1 − β2)·g + β2·m
/// ```
/// `1 − β` in f64, rounded once, as Python computes it before JAX casts it.
pub fn lion(t: TensorStep<'_>, lr: f64, betas: (f64, f64), weight_decay: f64) {
    let (params, grads, [exp_avg]) = t.kept("Lion");
    let (b1, one_minus_b1) = (betas.0 as f32, (1.0 - betas.0) as f32);
    let (b2, one_minus_b2) = (betas.1 as f32, (1.0 - betas.1) as f32);
    let (neg_lr, wd) = (-lr as f32, weight_decay as f32);
    for i in 0..params.len() {
        let (p, g, m) = (params[i], grads[i], exp_avg[i]);
        let u = sign_keep_nan(one_minus_b1 * g + b1 * m) + wd * p;
        params[i] = p + neg_lr * u;
        exp_avg[i] = one_minus_b2 * g + b2 * m;
    }
}
