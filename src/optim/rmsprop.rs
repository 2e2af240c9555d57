//! RMSprop, plain or centered, with momentum, weight decay and maximize.

use super::{bit, check, check_lr, Fused, Hyper, UpdateRule};
use crate::error::Result;
use crate::reference::{self, GradTransform, StepState};

/// Config of [`RmsProp`] (`torch.optim.RMSprop`, Hinton's lecture 6e); `Default` is PyTorch's.
///
/// Per element, with `g` the clipped, unscaled gradient:
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// s ← α·s + (1 − α)·g²
/// avg ← sqrt(s − a²) + eps with a ← lerp(a, g, 1 − α) if centered, else sqrt(s) + eps
/// if momentum > 0:  b ← momentum·b + g / avg;  p ← p − lr·b
/// else              p ← p − lr·g / avg
/// ```
/// Same rule as PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f32,
    /// Smoothing constant α (default 0.99).
    pub alpha: f32,
    /// Added to the denominator (default 1e-8).
    pub eps: f32,
    /// L2 penalty (default 0).
    pub weight_decay: f32,
    /// Momentum factor (default 0).
    pub momentum: f32,
    /// Normalize by the estimated variance instead of the second moment.
    pub centered: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// Fused RMSprop: see [`RmsPropConfig`] for the rule.
pub type RmsProp = Fused<RmsPropConfig>;

const CENTERED: u32 = 1;
const MAXIMIZE: u32 = 2;

impl UpdateRule for RmsPropConfig {
    const NAME: &'static str = "RMSprop";
    const KERNEL: &'static str = "rmsprop";
    const STATE_SLOTS: usize = 3;

    fn validate(&self) -> Result<()> {
        check_lr(Self::NAME, self.lr)?;
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        let rule = "must be finite and >= 0";
        check(Self::NAME, "epsilon value", self.eps, ok(self.eps), rule)?;
        check(
            Self::NAME,
            "momentum value",
            self.momentum,
            ok(self.momentum),
            rule,
        )?;
        check(
            Self::NAME,
            "weight_decay value",
            self.weight_decay,
            ok(self.weight_decay),
            rule,
        )?;
        check(Self::NAME, "alpha value", self.alpha, ok(self.alpha), rule)
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [
            Some("square_avg"),
            self.centered.then_some("grad_avg"),
            (self.momentum > 0.0).then_some("momentum_buffer"),
        ]
    }

    fn bias_correction_betas(&self) -> Option<(f32, f32)> {
        None
    }

    fn hyper(&self) -> Hyper {
        Hyper {
            lr: self.lr,
            h1: self.alpha,
            h2: self.eps,
            h3: self.momentum,
            weight_decay: self.weight_decay,
            flags: bit(self.centered, CENTERED) | bit(self.maximize, MAXIMIZE),
        }
    }

    fn from_hyper(h: &Hyper) -> Self {
        RmsPropConfig {
            lr: h.lr,
            alpha: h.h1,
            eps: h.h2,
            momentum: h.h3,
            weight_decay: h.weight_decay,
            centered: h.flags & CENTERED != 0,
            maximize: h.flags & MAXIMIZE != 0,
        }
    }

    fn cpu_update(
        &self,
        state: &StepState,
        t: &GradTransform,
        params: &mut [f32],
        grads: &[f32],
        states: [&mut [f32]; 3],
    ) {
        let [square_avg, grad_avg, momentum_buffer] = states;
        reference::rmsprop_update(
            self,
            state,
            t,
            params,
            grads,
            square_avg,
            grad_avg,
            momentum_buffer,
        );
    }
}
