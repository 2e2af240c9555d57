//! SGD with momentum, dampening, Nesterov, weight decay and maximize.

use serde::{Deserialize, Serialize};

use super::engine::Rule;
use super::{check, check_non_negative, optimizer};
use crate::error::Result;
use crate::kernels::sgd::{SgdUniform, SHADER};
use crate::reference;
use crate::shaders::{RuleShader, SHAPE_MOMENTUM, SHAPE_NESTEROV};

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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate (PyTorch default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (default 0: no momentum buffer is allocated).
    pub momentum: f64,
    /// Dampening of the momentum (default 0).
    pub dampening: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
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

optimizer! {
    /// Fused SGD (`torch.optim.SGD`): see [`SgdConfig`] for the rule.
    Sgd(SgdConfig)
}

impl Rule for SgdConfig {
    const NAME: &'static str = "SGD";
    const TORCH_STEP: bool = false;
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_non_negative(Self::NAME, "lr", self.lr)?;
        check_non_negative(Self::NAME, "momentum", self.momentum)?;
        check(
            Self::NAME,
            "dampening",
            self.dampening,
            self.dampening.is_finite(),
            "must be finite",
        )?;
        check_non_negative(Self::NAME, "weight_decay", self.weight_decay)?;
        if self.nesterov {
            check(
                Self::NAME,
                "momentum",
                self.momentum,
                self.momentum > 0.0,
                "Nesterov momentum requires a momentum > 0",
            )?;
            check(
                Self::NAME,
                "dampening",
                self.dampening,
                self.dampening == 0.0,
                "Nesterov momentum requires zero dampening",
            )?;
        }
        Ok(())
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [
            (self.momentum != 0.0).then_some("momentum_buffer"),
            None,
            None,
        ]
    }

    fn uniform(&self) -> Vec<u8> {
        let u = SgdUniform::new(
            self.lr,
            self.momentum,
            self.dampening,
            self.weight_decay,
            self.nesterov,
            self.maximize,
        );
        bytemuck::bytes_of(&u).to_vec()
    }

    fn shape(&self) -> u32 {
        // The kernel keeps a momentum buffer where the table says so: momentum ≠ 0.
        let momentum = if self.momentum != 0.0 {
            SHAPE_MOMENTUM
        } else {
            0
        };
        momentum | if self.nesterov { SHAPE_NESTEROV } else { 0 }
    }

    fn host_update(
        &self,
        step: u32,
        params: &mut [f32],
        grads: &[f32],
        states: [Option<&mut [f32]>; 3],
    ) {
        let [momentum_buffer, _, _] = states;
        reference::sgd(
            params,
            grads,
            momentum_buffer,
            step == 1,
            self.lr,
            self.momentum,
            self.dampening,
            self.weight_decay,
            self.nesterov,
            self.maximize,
        );
    }
}
