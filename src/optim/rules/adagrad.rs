//! Adagrad, with learning-rate decay, an initial accumulator, weight decay and maximize.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{rule_shader, RuleShader};
use crate::optim::engine::Rule;
use crate::optim::{check_non_negative, optimizer};
use crate::optim::{RuleConfig, TensorStep};
use crate::reference;

/// The Adagrad update body (`shaders/rules/adagrad.wgsl`, which declares its group table); states
/// in slot order: `sum`.
pub(super) static SHADER: RuleShader = rule_shader!("adagrad", AdagradUniform, states: 1);

shared_struct! {
    /// `struct Adagrad` of `shaders/rules/adagrad.wgsl`.
    AdagradUniform = "Adagrad" {
        /// Learning rate.
        lr: f32,
        /// Learning-rate decay per step.
        lr_decay: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// 1: maximize.
        maximize: u32,
        /// Padding to a 16-byte row.
        _pad0: u32,
        /// Padding.
        _pad1: u32,
        /// Padding.
        _pad2: u32,
    }
}

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

impl RuleConfig for AdagradConfig {
    const NAME: &'static str = "Adagrad";

    fn examples() -> Vec<Self> {
        let d = AdagradConfig::default();
        vec![
            AdagradConfig {
                lr: 5e-2,
                lr_decay: 0.01,
                weight_decay: 0.01,
                initial_accumulator_value: 0.1,
                ..d
            },
            d,
            AdagradConfig {
                maximize: true,
                eps: 1e-6,
                ..d
            },
        ]
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [Some("sum"), None, None]
    }

    fn initial_state(&self) -> [f32; 3] {
        [self.initial_accumulator_value as f32, 0.0, 0.0]
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let [sum, _, _] = t.states;
        reference::adagrad(
            t.params,
            t.grads,
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

impl Rule for AdagradConfig {
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
}

/// Registers the rule ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<AdagradConfig>();
}
