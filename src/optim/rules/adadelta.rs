//! Adadelta: a learning rate per element from running averages of squared gradients and
//! squared updates (PyTorch's rule).

use crate::error::Result;
use crate::optim::declare::FieldChecks;
use crate::optim::engine::Rule;
use crate::optim::{check, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`Adadelta`] (`torch.optim.Adadelta`, Zeiler 2012, "ADADELTA: An Adaptive
    /// Learning Rate Method"); `Default` is PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient:
    /// ```text
    /// g ← −g if maximize;  g ← g + weight_decay·p
    /// v ← ρ·v + (1 − ρ)·g²                      (square_avg)
    /// Δ ← sqrt(u + eps) / sqrt(v + eps) · g
    /// u ← ρ·u + (1 − ρ)·Δ²                      (acc_delta)
    /// p ← p − lr·Δ
    /// ```
    /// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`).
    pub struct AdadeltaConfig = "Adadelta" {
        /// Scales Δ (PyTorch's default 1: the method needs no learning rate).
        pub lr: f64,
        /// ρ: the decay of both running averages.
        pub rho: f64,
        /// Added inside both square roots.
        pub eps: f64,
        /// L2 penalty.
        pub weight_decay: f64,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: { lr: 1.0, rho: 0.9, eps: 1e-6, weight_decay: 0.0, maximize: false },
    non_negative: [lr, eps = "epsilon value", weight_decay = "weight_decay value"],
    states: ["square_avg", "acc_delta"],
    examples: [{ rho: 0.8, weight_decay: 0.01, maximize: true }, {}, { lr: 0.5, eps: 1e-3 }],
    /// Fused Adadelta (`torch.optim.Adadelta`): see [`AdadeltaConfig`] for the rule.
    optimizer: Adadelta,
}

impl RuleConfig for AdadeltaConfig {
    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        let (lr, rho, eps, wd) = (self.lr, self.rho, self.eps, self.weight_decay);
        reference::adadelta(t, lr, rho, eps, wd, self.maximize);
    }
}

impl Rule for AdadeltaConfig {
    fn validate(&self) -> Result<()> {
        self.check_fields()?;
        let ok = (0.0..=1.0).contains(&self.rho);
        check(Self::NAME, "rho value", self.rho, ok, "must be in [0, 1]")
    }
}

rule_kernel! {
    /// `struct Adadelta` of `shaders/rules/adadelta.wgsl`: one row of the group table.
    "adadelta" for [AdadeltaConfig] as c, uniform AdadeltaUniform = "Adadelta" {
        /// ρ.
        rho: f32 = c.rho as f32,
        /// `1 − ρ`, in f64 then rounded.
        one_minus_rho: f32 = (1.0 - c.rho) as f32,
        /// Added inside both square roots.
        eps: f32 = c.eps as f32,
        /// `−lr`.
        neg_lr: f32 = -c.lr as f32,
        /// L2 penalty.
        weight_decay: f32 = c.weight_decay as f32,
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// Padding to a 16-byte row.
        _pad: [u32; 2] = [0; 2],
    }
}
