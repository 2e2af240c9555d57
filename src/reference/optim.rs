//! Optimizer updates in f32, line by line the twins of `shaders/sgd.wgsl`,
//! `shaders/adam.wgsl` and `shaders/rmsprop.wgsl`, and of PyTorch's single-tensor loops
//! (`_single_tensor_sgd`, `_single_tensor_adam`, `_single_tensor_rmsprop`) on CPU:
//! hyperparameters are Python floats (f64) there and here, and scalar constants such as
//! `1 − β` are computed in f64 and rounded once. ATen's vectorized CPU kernels fuse some
//! multiply-adds (`add(x, alpha=a)`, `lerp`, `addcmul`); this code and the shaders do not,
//! and the shaders round every product that feeds a sum on its own (a driver may fuse
//! otherwise: NVIDIA's Vulkan compiler does), so the GPU matches this code to a few ulp (the golden fixtures measure what that costs: see `golden.rs`).
//! `grads` are the gradients the step applies (already clipped and unscaled).

use super::TensorStep;

/// `torch.lerp(start, end, w)`: `start + w·(end − start)` for `|w| < 0.5`, else
/// `end − (end − start)·(1 − w)`.
pub fn torch_lerp(start: f32, end: f32, w: f32) -> f32 {
    if w < 0.5 {
        start + w * (end - start)
    } else {
        end - (end - start) * (1.0 - w)
    }
}

/// The gradient a rule applies to parameter `p`: `−g` if maximize, then `g + weight_decay·p`
/// (PyTorch's L2 penalty; 0: none). The twin of `signed_decayed` in `shaders/common.wgsl`.
pub fn signed_decayed(g: f32, p: f32, maximize: bool, weight_decay: f32) -> f32 {
    let g = if maximize { -g } else { g };
    if weight_decay != 0.0 {
        g + weight_decay * p
    } else {
        g
    }
}

/// The gradient and parameter an Adam-family step (Adam, AdamW, NAdam, RAdam) continues
/// with: `g ← −g if maximize`, then AdamW's decoupled decay `p ← p·decay_factor` (with
/// `decay_factor = 1 − lr·weight_decay`), or Adam's L2 penalty `g ← g + weight_decay·p`.
pub fn adam_decay(
    g: f32, p: f32, maximize: bool, weight_decay: f32, decay_factor: f32, decoupled: bool,
) -> (f32, f32) {
    if decoupled {
        let p = if weight_decay != 0.0 {
            p * decay_factor
        } else {
            p
        };
        (signed_decayed(g, p, maximize, 0.0), p)
    } else {
        (signed_decayed(g, p, maximize, weight_decay), p)
    }
}

/// Adam's two moments after gradient `g`, in place and returned (the twin of
/// `adam_moments` in `shaders/update.wgsl`):
/// `m ← lerp(m, g, 1 − β1)`, `v ← v·β2 + (1 − β2)·g·g`.
pub fn adam_moments(
    m: &mut f32, v: &mut f32, g: f32, one_minus_b1: f32, beta2: f32, one_minus_b2: f32,
) -> (f32, f32) {
    *m = torch_lerp(*m, g, one_minus_b1);
    *v = *v * beta2 + one_minus_b2 * g * g;
    (*m, *v)
}

/// Adam's bias correction `1 − β^step`, in f64 (PyTorch: `1 - beta ** step`).
pub fn bias_correction(beta: f64, step: u32) -> f64 {
    1.0 - beta.powi(step as i32)
}

/// One `torch.optim.SGD` step over one tensor, its state slot 0 the momentum buffer, `Some`
/// exactly when `momentum != 0`; on the `first_step` it is set to the gradient (PyTorch's `None` buffer).
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// if momentum ≠ 0:  b ← g on the first step, else momentum·b + (1 − dampening)·g
///                   g ← g + momentum·b if nesterov, else b
/// p ← p − lr·g
/// ```
#[allow(clippy::too_many_arguments)]
pub fn sgd(
    t: TensorStep<'_>, first_step: bool, lr: f64, momentum: f64, dampening: f64, weight_decay: f64,
    nesterov: bool, maximize: bool,
) {
    let TensorStep {
        params,
        grads,
        states: [mut momentum_buffer, _, _],
        ..
    } = t;
    let (neg_lr, mu, one_minus_dampening, wd) = (
        -lr as f32,
        momentum as f32,
        (1.0 - dampening) as f32,
        weight_decay as f32,
    );
    for i in 0..params.len() {
        let p = params[i];
        let mut g = signed_decayed(grads[i], p, maximize, wd);
        if let Some(buf) = momentum_buffer.as_deref_mut() {
            let b = if first_step {
                g
            } else {
                buf[i] * mu + one_minus_dampening * g
            };
            buf[i] = b;
            g = if nesterov { g + mu * b } else { b };
        }
        params[i] = p + neg_lr * g;
    }
}

/// One `torch.optim.Adam` (`decoupled_weight_decay = false`) or `torch.optim.AdamW`
/// (`true`) step over one tensor, `step` counting this one (1 on the first step); its
/// states by slot `exp_avg`, `exp_avg_sq` and `max_exp_avg_sq` (`Some` exactly with amsgrad). `bias_correction = false` drops both
/// corrections (Apex's `FusedAdam(bias_correction=False)`).
/// ```text
/// g ← −g if maximize
/// AdamW: p ← p·(1 − lr·weight_decay)      Adam: g ← g + weight_decay·p
/// m ← lerp(m, g, 1 − β1);   v ← v·β2 + (1 − β2)·g·g
/// v̂ ← max(v̂, v) with amsgrad, else v
/// p ← p + (−lr / (1 − β1^t))·m / (sqrt(v̂) / sqrt(1 − β2^t) + eps)
/// ```
#[allow(clippy::too_many_arguments)]
pub fn adam(
    t: TensorStep<'_>, step: u32, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64,
    decoupled_weight_decay: bool, maximize: bool, bias_correction: bool,
) {
    let TensorStep {
        params,
        grads,
        states: [Some(exp_avg), Some(exp_avg_sq), mut max_exp_avg_sq],
        ..
    } = t
    else {
        panic!("Adam keeps exp_avg and exp_avg_sq")
    };
    let (b1, b2) = betas;
    let (bc1, bc2) = if bias_correction {
        (
            self::bias_correction(b1, step),
            self::bias_correction(b2, step),
        )
    } else {
        (1.0, 1.0)
    };
    let neg_step_size = -(lr / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let (one_minus_b1, beta2, one_minus_b2) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32);
    let (eps, wd, decay_factor) = (
        eps as f32,
        weight_decay as f32,
        (1.0 - lr * weight_decay) as f32,
    );
    for i in 0..params.len() {
        // AdamW decays the parameter; Adam adds an L2 penalty to the gradient.
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
        let mut vhat = v;
        if let Some(vmax) = max_exp_avg_sq.as_deref_mut() {
            vhat = vmax[i].max(v);
            vmax[i] = vhat;
        }
        let denom = vhat.sqrt() / bc2_sqrt + eps;
        params[i] = p + neg_step_size * m / denom;
    }
}

/// One `torch.optim.RMSprop` step over one tensor; its states by slot `square_avg`,
/// `grad_avg` (`Some` exactly when centered) and `momentum_buffer` (exactly when
/// `momentum > 0`).
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// s ← s·α + (1 − α)·g·g
/// centered: a ← lerp(a, g, 1 − α); avg ← sqrt(s − a·a) + eps      else avg ← sqrt(s) + eps
/// momentum > 0: b ← b·momentum + g / avg; p ← p − lr·b             else p ← p − lr·g / avg
/// ```
pub fn rmsprop(
    t: TensorStep<'_>, lr: f64, alpha: f64, eps: f64, weight_decay: f64, momentum: f64,
    maximize: bool,
) {
    let TensorStep {
        params,
        grads,
        states: [Some(square_avg), mut grad_avg, mut momentum_buffer],
        ..
    } = t
    else {
        panic!("RMSprop keeps square_avg")
    };
    let (neg_lr, a, one_minus_a) = (-lr as f32, alpha as f32, (1.0 - alpha) as f32);
    let (eps, wd, mu) = (eps as f32, weight_decay as f32, momentum as f32);
    for i in 0..params.len() {
        let p = params[i];
        let g = signed_decayed(grads[i], p, maximize, wd);
        let s = square_avg[i] * a + one_minus_a * g * g;
        square_avg[i] = s;
        let avg = match grad_avg.as_deref_mut() {
            Some(ga) => {
                let m = torch_lerp(ga[i], g, one_minus_a);
                ga[i] = m;
                (s + (-m) * m).sqrt() + eps
            }
            None => s.sqrt() + eps,
        };
        params[i] = match momentum_buffer.as_deref_mut() {
            Some(buf) => {
                let b = buf[i] * mu + g / avg;
                buf[i] = b;
                p + neg_lr * b
            }
            None => p + neg_lr * g / avg,
        };
    }
}
