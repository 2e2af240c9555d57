//! Rprop in f32, the twin of `shaders/rules/rprop.wgsl` and of PyTorch's
//! `_single_tensor_rprop` on CPU.

use crate::reference::TensorStep;

/// `torch.sign`: −1, 0 or 1, NaN for NaN.
fn torch_sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

/// One `torch.optim.Rprop` step over one tensor, its states by slot `prev` and
/// `step_size` (`s`, starting at `lr`):
/// ```text
/// g ← −g if maximize
/// f ← etaplus if g·prev > 0;  etaminus if g·prev < 0;  1 if 0;  NaN if NaN
/// s ← clamp(s·f, step_size_min, step_size_max)      (NaN kept, as torch.clamp)
/// g ← 0 where g·prev < 0
/// p ← p + (−sign(g)·s);   prev ← g
/// ```
/// The factors and bounds rounded to f32 (PyTorch's scalars in a float kernel).
pub fn rprop(t: TensorStep<'_>, etas: (f64, f64), step_sizes: (f64, f64), maximize: bool) {
    let (params, grads, [prev, step_size]) = t.kept("Rprop");
    let (etaminus, etaplus) = (etas.0 as f32, etas.1 as f32);
    let (low, high) = (step_sizes.0 as f32, step_sizes.1 as f32);
    for i in 0..params.len() {
        let g = if maximize { -grads[i] } else { grads[i] };
        let product = g * prev[i];
        let factor = if product > 0.0 {
            etaplus
        } else if product < 0.0 {
            etaminus
        } else if product.is_nan() {
            product
        } else {
            1.0
        };
        let grown = step_size[i] * factor;
        let s = if grown.is_nan() {
            grown
        } else {
            grown.max(low).min(high)
        };
        let applied = if product < 0.0 { 0.0 } else { g };
        step_size[i] = s;
        prev[i] = applied;
        params[i] += -torch_sign(applied) * s;
    }
}
