//! Adagrad, with learning-rate decay, an initial accumulator, weight decay and maximize.

use serde::{Deserialize, Serialize};

use super::engine::Rule;
use super::{check_non_negative, optimizer};
use crate::error::Result;
use crate::kernels::adagrad::{AdagradUniform, SHADER};
use crate::reference;
use crate::shaders::RuleShader;

/// Config of [`Adagrad`] (`torch.optim.Adagrad`, Duchi et al. 2011); `Default` is PyTorch's.
///
/// Per element, with `g` the clipped, unscaled gradient and `step` the optimizer's step
/// count (1 on the first):
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// s ← s + g²                                  (s starts at initial_accumulator_value)
/// p ← p − clr·g / (sqrt(s) + eps)             clr = lr / (1 + (step − 1)·lr_decay)
/// ```
/// Same rule as PyTorch's; `clr` is computed in f32 on the device (PyTorch: f64, rounded
/// when used), identical whenever `lr_decay = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdagradConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay per step (default 0).
    pub lr_decay: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// Starting value of the sum of squares (default 0).
    pub initial_accumulator_value: f64,
    /// Added to the denominator (default 1e-10).
    pub eps: f64,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

optimizer! {
    /// Fused Adagrad (`torch.optim.Adagrad`): see [`AdagradConfig`] for the rule.
    Adagrad(AdagradConfig)
}

impl Rule for AdagradConfig {
    const NAME: &'static str = "Adagrad";
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_non_negative(Self::NAME, "lr", self.lr)?;
        check_non_negative(Self::NAME, "lr_decay value", self.lr_decay)?;
        check_non_negative(Self::NAME, "weight_decay value", self.weight_decay)?;
        check_non_negative(
            Self::NAME,
            "initial_accumulator_value",
            self.initial_accumulator_value,
        )?;
        check_non_negative(Self::NAME, "epsilon value", self.eps)
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [Some("sum"), None, None]
    }

    fn initial_state(&self) -> [f32; 3] {
        [self.initial_accumulator_value as f32, 0.0, 0.0]
    }

    fn uniform(&self) -> Vec<u8> {
        let u = AdagradUniform {
            lr: self.lr as f32,
            lr_decay: self.lr_decay as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            maximize: u32::from(self.maximize),
            ..Default::default()
        };
        bytemuck::bytes_of(&u).to_vec()
    }

    fn host_update(
        &self,
        step: u32,
        params: &mut [f32],
        grads: &[f32],
        states: [Option<&mut [f32]>; 3],
    ) {
        let [sum, _, _] = states;
        reference::adagrad(
            params,
            grads,
            sum.expect("sum is always kept"),
            step,
            self.lr,
            self.lr_decay,
            self.weight_decay,
            self.eps,
            self.maximize,
        );
    }
}
