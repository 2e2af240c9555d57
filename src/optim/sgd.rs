//! SGD with momentum, dampening, Nesterov, weight decay and maximize.

use super::{bit, check, check_lr, Fused, Hyper, UpdateRule};
use crate::error::Result;
use crate::reference::{self, GradTransform, StepState};

/// Config of [`Sgd`] (`torch.optim.SGD`); `Default` is PyTorch's.
///
/// Per element, with `g` the clipped, unscaled gradient:
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// if momentum ≠ 0:  b ← g on the first step, else momentum·b + (1 − dampening)·g
///                   g ← g + momentum·b if nesterov, else b
/// p ← p − lr·g
/// ```
/// Same rule as PyTorch's; "first step" is the first step that was not skipped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (PyTorch default 1e-3).
    pub lr: f32,
    /// Momentum factor μ (default 0: no momentum buffer is allocated).
    pub momentum: f32,
    /// Dampening of the momentum (default 0).
    pub dampening: f32,
    /// L2 penalty (default 0).
    pub weight_decay: f32,
    /// Nesterov momentum (needs momentum > 0 and dampening = 0).
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

/// Fused SGD: see [`SgdConfig`] for the rule.
pub type Sgd = Fused<SgdConfig>;

const NESTEROV: u32 = 1;
const MAXIMIZE: u32 = 2;
const MOMENTUM_BUFFER: u32 = 4;

impl UpdateRule for SgdConfig {
    const NAME: &'static str = "SGD";
    const KERNEL: &'static str = "sgd";
    const STATE_SLOTS: usize = 1;

    fn validate(&self) -> Result<()> {
        check_lr(Self::NAME, self.lr)?;
        let finite_non_negative = |x: f32| x.is_finite() && x >= 0.0;
        check(
            Self::NAME,
            "momentum",
            self.momentum,
            finite_non_negative(self.momentum),
            "must be finite and >= 0",
        )?;
        check(
            Self::NAME,
            "dampening",
            self.dampening,
            self.dampening.is_finite(),
            "must be finite",
        )?;
        check(
            Self::NAME,
            "weight_decay",
            self.weight_decay,
            finite_non_negative(self.weight_decay),
            "must be finite and >= 0",
        )?;
        if self.nesterov {
            check(
                Self::NAME,
                "nesterov",
                self.momentum,
                self.momentum > 0.0 && self.dampening == 0.0,
                "Nesterov momentum requires a momentum and zero dampening",
            )?;
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [
            (self.momentum != 0.0).then_some("momentum_buffer"),
            None,
            None,
        ]
    }

    fn bias_correction_betas(&self) -> Option<(f32, f32)> {
        None
    }

    fn hyper(&self) -> Hyper {
        Hyper {
            lr: self.lr,
            h1: self.momentum,
            h2: self.dampening,
            h3: 0.0,
            weight_decay: self.weight_decay,
            flags: bit(self.nesterov, NESTEROV)
                | bit(self.maximize, MAXIMIZE)
                | bit(self.momentum != 0.0, MOMENTUM_BUFFER),
        }
    }

    fn from_hyper(h: &Hyper) -> Self {
        SgdConfig {
            lr: h.lr,
            momentum: h.h1,
            dampening: h.h2,
            weight_decay: h.weight_decay,
            nesterov: h.flags & NESTEROV != 0,
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
        let [momentum_buffer, _, _] = states;
        reference::sgd_update(self, state, t, params, grads, momentum_buffer);
    }
}
