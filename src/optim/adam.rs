//! Adam and AdamW, with amsgrad, maximize and optional bias correction.

use super::{bit, check, check_lr, Fused, Hyper, UpdateRule};
use crate::error::Result;
use crate::reference::{self, GradTransform, StepState};

/// Config of [`Adam`] (`torch.optim.Adam`); `Default` is PyTorch's.
///
/// Per element, with `g` the clipped, unscaled gradient and `t` the step count:
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p            (Adam: L2 penalty)
/// m ← lerp(m, g, 1 − β1);   v ← β2·v + (1 − β2)·g²
/// v̂ ← max(v̂, v) if amsgrad, else v
/// p ← p − (lr / (1 − β1^t)) · m / (sqrt(v̂) / sqrt(1 − β2^t) + eps)
/// ```
/// Same rule as PyTorch's. `bias_correction = false` drops both corrections
/// (Apex's `FusedAdam(bias_correction=False)`; PyTorch has no such switch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f32,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f32, f32),
    /// Added to the denominator (default 1e-8).
    pub eps: f32,
    /// Weight decay: an L2 penalty for Adam, decoupled for AdamW.
    pub weight_decay: f32,
    /// Use the running maximum of v (Reddi et al. 2018, "On the Convergence of Adam and Beyond").
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
    /// Divide by 1 − β^t (default true).
    pub bias_correction: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            bias_correction: true,
        }
    }
}

/// Config of [`AdamW`] (`torch.optim.AdamW`, Loshchilov & Hutter 2019, "Decoupled Weight
/// Decay Regularization"): the fields of [`AdamConfig`], default weight decay 1e-2, and
/// the decay applied to the parameter, `p ← p·(1 − lr·weight_decay)`, before the Adam step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (default 1e-3).
    pub lr: f32,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f32, f32),
    /// Added to the denominator (default 1e-8).
    pub eps: f32,
    /// Decoupled weight decay (default 1e-2).
    pub weight_decay: f32,
    /// Use the running maximum of v.
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
    /// Divide by 1 − β^t (default true).
    pub bias_correction: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            weight_decay: 1e-2,
            ..AdamWConfig::from(AdamConfig::default())
        }
    }
}

impl From<AdamConfig> for AdamWConfig {
    fn from(c: AdamConfig) -> Self {
        AdamWConfig {
            lr: c.lr,
            betas: c.betas,
            eps: c.eps,
            weight_decay: c.weight_decay,
            amsgrad: c.amsgrad,
            maximize: c.maximize,
            bias_correction: c.bias_correction,
        }
    }
}

impl From<AdamWConfig> for AdamConfig {
    fn from(c: AdamWConfig) -> Self {
        AdamConfig {
            lr: c.lr,
            betas: c.betas,
            eps: c.eps,
            weight_decay: c.weight_decay,
            amsgrad: c.amsgrad,
            maximize: c.maximize,
            bias_correction: c.bias_correction,
        }
    }
}

/// Fused Adam: see [`AdamConfig`] for the rule.
pub type Adam = Fused<AdamConfig>;
/// Fused AdamW: see [`AdamWConfig`] for the rule.
pub type AdamW = Fused<AdamWConfig>;

const AMSGRAD: u32 = 1;
const MAXIMIZE: u32 = 2;
const DECOUPLED: u32 = 4;
const BIAS_CORRECTION: u32 = 8;

fn validate(name: &'static str, c: &AdamConfig) -> Result<()> {
    check_lr(name, c.lr)?;
    check(
        name,
        "eps",
        c.eps,
        c.eps.is_finite() && c.eps >= 0.0,
        "must be finite and >= 0",
    )?;
    let (b1, b2) = c.betas;
    check(
        name,
        "beta parameter at index 0",
        b1,
        (0.0..1.0).contains(&b1),
        "must be in [0, 1)",
    )?;
    check(
        name,
        "beta parameter at index 1",
        b2,
        (0.0..1.0).contains(&b2),
        "must be in [0, 1)",
    )?;
    check(
        name,
        "weight_decay",
        c.weight_decay,
        c.weight_decay.is_finite() && c.weight_decay >= 0.0,
        "must be finite and >= 0",
    )
}

fn state_names(c: &AdamConfig) -> [Option<&'static str>; 3] {
    [
        Some("exp_avg"),
        Some("exp_avg_sq"),
        c.amsgrad.then_some("max_exp_avg_sq"),
    ]
}

fn hyper(c: &AdamConfig, decoupled: bool) -> Hyper {
    Hyper {
        lr: c.lr,
        h1: c.betas.0,
        h2: c.betas.1,
        h3: c.eps,
        weight_decay: c.weight_decay,
        flags: bit(c.amsgrad, AMSGRAD)
            | bit(c.maximize, MAXIMIZE)
            | bit(decoupled, DECOUPLED)
            | bit(c.bias_correction, BIAS_CORRECTION),
    }
}

fn from_hyper(h: &Hyper) -> AdamConfig {
    AdamConfig {
        lr: h.lr,
        betas: (h.h1, h.h2),
        eps: h.h3,
        weight_decay: h.weight_decay,
        amsgrad: h.flags & AMSGRAD != 0,
        maximize: h.flags & MAXIMIZE != 0,
        bias_correction: h.flags & BIAS_CORRECTION != 0,
    }
}

fn cpu_update(
    c: &AdamConfig,
    decoupled: bool,
    state: &StepState,
    t: &GradTransform,
    params: &mut [f32],
    grads: &[f32],
    states: [&mut [f32]; 3],
) {
    let [m, v, vmax] = states;
    reference::adam_update(c, decoupled, state, t, params, grads, m, v, vmax);
}

impl UpdateRule for AdamConfig {
    const NAME: &'static str = "Adam";
    const KERNEL: &'static str = "adam";
    const STATE_SLOTS: usize = 3;

    fn validate(&self) -> Result<()> {
        validate(Self::NAME, self)
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn state_names(&self) -> [Option<&'static str>; 3] {
        state_names(self)
    }
    fn bias_correction_betas(&self) -> Option<(f32, f32)> {
        self.bias_correction.then_some(self.betas)
    }
    fn hyper(&self) -> Hyper {
        hyper(self, false)
    }
    fn from_hyper(h: &Hyper) -> Self {
        from_hyper(h)
    }
    fn cpu_update(
        &self,
        state: &StepState,
        t: &GradTransform,
        params: &mut [f32],
        grads: &[f32],
        states: [&mut [f32]; 3],
    ) {
        cpu_update(self, false, state, t, params, grads, states)
    }
}

impl UpdateRule for AdamWConfig {
    const NAME: &'static str = "AdamW";
    const KERNEL: &'static str = "adam";
    const STATE_SLOTS: usize = 3;

    fn validate(&self) -> Result<()> {
        validate(Self::NAME, &(*self).into())
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn state_names(&self) -> [Option<&'static str>; 3] {
        state_names(&(*self).into())
    }
    fn bias_correction_betas(&self) -> Option<(f32, f32)> {
        self.bias_correction.then_some(self.betas)
    }
    fn hyper(&self) -> Hyper {
        hyper(&(*self).into(), true)
    }
    fn from_hyper(h: &Hyper) -> Self {
        from_hyper(h).into()
    }
    fn cpu_update(
        &self,
        state: &StepState,
        t: &GradTransform,
        params: &mut [f32],
        grads: &[f32],
        states: [&mut [f32]; 3],
    ) {
        cpu_update(&(*self).into(), true, state, t, params, grads, states)
    }
}
