//! Fused updates in f32, line by line the twins of `shaders/sgd.wgsl`, `shaders/adam.wgsl`
//! and `shaders/rmsprop.wgsl` (and of PyTorch's single-tensor `_single_tensor_*` loops).

use super::clip::{effective_grad, GradTransform};
use super::step_state::StepState;
use crate::optim::{AdamConfig, RmsPropConfig, SgdConfig};

/// `torch.lerp(start, end, w)`: `start + w·(end − start)` for `w < 0.5`, else
/// `end − (end − start)·(1 − w)`.
pub fn torch_lerp(start: f32, end: f32, w: f32) -> f32 {
    if w < 0.5 {
        start + w * (end - start)
    } else {
        end - (end - start) * (1.0 - w)
    }
}

/// One SGD step over `params` (see [`SgdConfig`] for the rule); a skipped state changes nothing.
pub fn sgd_update(
    cfg: &SgdConfig,
    state: &StepState,
    t: &GradTransform,
    params: &mut [f32],
    grads: &[f32],
    momentum_buffer: &mut [f32],
) {
    if state.skipped {
        return;
    }
    for i in 0..params.len() {
        let p = params[i];
        let mut g = effective_grad(grads[i], t);
        if cfg.maximize {
            g = -g;
        }
        if cfg.weight_decay != 0.0 {
            g += cfg.weight_decay * p;
        }
        if cfg.momentum != 0.0 {
            let b = if state.step == 1 {
                g
            } else {
                cfg.momentum * momentum_buffer[i] + (1.0 - cfg.dampening) * g
            };
            momentum_buffer[i] = b;
            g = if cfg.nesterov {
                g + cfg.momentum * b
            } else {
                b
            };
        }
        params[i] = p - cfg.lr * g;
    }
}

/// One Adam (`decoupled = false`) or AdamW (`decoupled = true`) step; `max_exp_avg_sq`
/// is used only with amsgrad. A skipped state changes nothing.
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    cfg: &AdamConfig,
    decoupled: bool,
    state: &StepState,
    t: &GradTransform,
    params: &mut [f32],
    grads: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    max_exp_avg_sq: &mut [f32],
) {
    if state.skipped {
        return;
    }
    let (b1, b2) = cfg.betas;
    for i in 0..params.len() {
        let mut p = params[i];
        let mut g = effective_grad(grads[i], t);
        if cfg.maximize {
            g = -g;
        }
        if cfg.weight_decay != 0.0 {
            if decoupled {
                p *= 1.0 - cfg.lr * cfg.weight_decay;
            } else {
                g += cfg.weight_decay * p;
            }
        }
        let m = torch_lerp(exp_avg[i], g, 1.0 - b1);
        let v = exp_avg_sq[i] * b2 + (1.0 - b2) * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        let mut vhat = v;
        if cfg.amsgrad {
            vhat = max_exp_avg_sq[i].max(v);
            max_exp_avg_sq[i] = vhat;
        }
        let step_size = cfg.lr / state.bias_correction1;
        let denom = vhat.sqrt() / state.bias_correction2.sqrt() + cfg.eps;
        params[i] = p - step_size * (m / denom);
    }
}

/// One RMSprop step; `grad_avg` is used only when centered, `momentum_buffer` only with
/// momentum. A skipped state changes nothing.
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_update(
    cfg: &RmsPropConfig,
    state: &StepState,
    t: &GradTransform,
    params: &mut [f32],
    grads: &[f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    momentum_buffer: &mut [f32],
) {
    if state.skipped {
        return;
    }
    for i in 0..params.len() {
        let p = params[i];
        let mut g = effective_grad(grads[i], t);
        if cfg.maximize {
            g = -g;
        }
        if cfg.weight_decay != 0.0 {
            g += cfg.weight_decay * p;
        }
        let s = square_avg[i] * cfg.alpha + (1.0 - cfg.alpha) * g * g;
        square_avg[i] = s;
        let avg = if cfg.centered {
            let a = torch_lerp(grad_avg[i], g, 1.0 - cfg.alpha);
            grad_avg[i] = a;
            (s - a * a).sqrt() + cfg.eps
        } else {
            s.sqrt() + cfg.eps
        };
        if cfg.momentum > 0.0 {
            let b = cfg.momentum * momentum_buffer[i] + g / avg;
            momentum_buffer[i] = b;
            params[i] = p - cfg.lr * b;
        } else {
            params[i] = p - cfg.lr * (g / avg);
        }
    }
}
