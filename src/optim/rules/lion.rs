//! Lion: the sign of an interpolated momentum, with decoupled weight decay (Optax's rule).

use crate::error::Result;
use crate::optim::declare::FieldChecks;
use crate::optim::engine::Rule;
use crate::optim::{check, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`Lion`] (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms";
    /// `optax.lion`); `Default` is Optax's, with its learning rate of the paper's examples.
    ///
    /// Per element, with `g` the clipped, unscaled gradient and `m` the momentum (`exp_avg`,
    /// Optax's `mu`):
    /// ```text
    /// u ← sign((1 − β1)·g + β1·m) + weight_decay·p
    /// p ← p − lr·u
    /// m ← (1 − β2)·g + β2·m
    /// ```
    /// Same rule and order of operations as `optax.lion` (weight decay multiplied by the
    /// learning rate, as Optax and PyTorch's AdamW do). PyTorch has no Lion; the state is named
    /// `exp_avg` as in `lion-pytorch`.
    pub struct LionConfig = "Lion" {
        /// Learning rate (the paper suggests 3–10× below AdamW's).
        pub lr: f64,
        /// `(β1, β2)`: the sign's interpolation and the momentum's decay.
        pub betas: (f64, f64),
        /// Decoupled weight decay (Optax's default).
        pub weight_decay: f64,
    }
    default: { lr: 1e-4, betas: (0.9, 0.99), weight_decay: 1e-3 },
    non_negative: [lr, weight_decay = "weight_decay value"],
    states: ["exp_avg"],
    examples: [
        { lr: 1e-3, betas: (0.95, 0.98), weight_decay: 0.1 },
        { lr: 1e-3 },
        { lr: 1e-3, weight_decay: 0.0 },
    ],
    /// Fused Lion (`optax.lion`): see [`LionConfig`] for the rule.
    optimizer: Lion,
}

impl RuleConfig for LionConfig {
    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        reference::lion(t, self.lr, self.betas, self.weight_decay);
    }
}

impl Rule for LionConfig {
    const TORCH_STEP: bool = false;

    fn validate(&self) -> Result<()> {
        self.check_fields()?;
        for (name, beta) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            let ok = (0.0..=1.0).contains(&beta);
            check(Self::NAME, name, beta, ok, "must be in [0, 1]")?;
        }
        Ok(())
    }
}

rule_kernel! {
    /// `struct Lion` of `shaders/rules/lion.wgsl`.
    "lion" for [LionConfig] as c, uniform LionUniform = "Lion" {
        /// `−lr`.
        neg_lr: f32 = -c.lr as f32,
        /// β1: weight of the momentum in the sign's argument.
        beta1: f32 = c.betas.0 as f32,
        /// `1 − β1`, in f64 then rounded.
        one_minus_beta1: f32 = (1.0 - c.betas.0) as f32,
        /// β2: decay of the momentum.
        beta2: f32 = c.betas.1 as f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32 = (1.0 - c.betas.1) as f32,
        /// Decoupled weight decay (multiplied by the learning rate, as Optax).
        weight_decay: f32 = c.weight_decay as f32,
        /// Padding to a 16-byte row.
        _pad: [u32; 2] = [0; 2],
    }
}
