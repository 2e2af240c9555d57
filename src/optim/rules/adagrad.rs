//! Adagrad, with learning-rate decay, an initial accumulator, weight decay and maximize.

use crate::optim::engine::Rule;
use crate::optim::{rule, rule_kernel, RuleConfig};
use crate::reference::{self, TensorStep};

rule! {
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
    pub struct AdagradConfig = "Adagrad" {
        /// Learning rate.
        pub lr: f64,
        /// Learning-rate decay per step.
        pub lr_decay: f64,
        /// L2 penalty.
        pub weight_decay: f64,
        /// Starting value of the sum of squares.
        pub initial_accumulator_value: f64,
        /// Added to the denominator.
        pub eps: f64,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: {
        lr: 1e-2, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10,
        maximize: false,
    },
    non_negative: [
        lr, lr_decay = "lr_decay value", weight_decay = "weight_decay value",
        initial_accumulator_value, eps = "epsilon value",
    ],
    states: ["sum"],
    examples: [
        { lr: 5e-2, lr_decay: 0.01, weight_decay: 0.01, initial_accumulator_value: 0.1 },
        {},
        { maximize: true, eps: 1e-6 },
    ],
    /// Fused Adagrad (`torch.optim.Adagrad`): see [`AdagradConfig`] for the rule.
    optimizer: Adagrad,
}

impl RuleConfig for AdagradConfig {
    fn initial_state(&self) -> [f32; 3] {
        [self.initial_accumulator_value as f32, 0.0, 0.0]
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let (lr, decay, wd, eps) = (self.lr, self.lr_decay, self.weight_decay, self.eps);
        reference::adagrad(t, step, lr, decay, wd, eps, self.maximize);
    }
}

impl Rule for AdagradConfig {}

rule_kernel! {
    /// `struct Adagrad` of `shaders/rules/adagrad.wgsl`.
    "adagrad" for [AdagradConfig] as c, uniform AdagradUniform = "Adagrad" {
        /// Learning rate.
        lr: f32 = c.lr as f32,
        /// Learning-rate decay per step.
        lr_decay: f32 = c.lr_decay as f32,
        /// Added to the denominator.
        eps: f32 = c.eps as f32,
        /// L2 penalty.
        weight_decay: f32 = c.weight_decay as f32,
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// Padding to a 16-byte row.
        _pad0: u32 = 0,
        /// Padding.
        _pad1: u32 = 0,
        /// Padding.
        _pad2: u32 = 0,
    }
}
