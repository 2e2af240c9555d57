//! ASGD: SGD with a decaying step size and a running average of the parameters (PyTorch's
//! rule).

use crate::optim::engine::Rule;
use crate::optim::{rule, rule_kernel, RuleConfig};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`Asgd`] (`torch.optim.ASGD`, Polyak & Juditsky 1992, "Acceleration of
    /// Stochastic Approximation by Averaging"); `Default` is PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient and `t` the step count (1 on the
    /// first):
    /// ```text
    /// η = lr / (1 + λ·lr·(t − 1))^α;   μ = 1 / max(1, t − 1 − t0)
    /// g ← −g if maximize;  g ← g + weight_decay·p
    /// p ← p·(1 − λ·η) − η·g
    /// ax ← p if μ = 1, else ax + (p − ax)·μ
    /// ```
    /// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`):
    /// its per-tensor `eta` and `mu` after step `t − 1` are the η and μ above, computed in
    /// f32 on the device from the step it counted (PyTorch: f64, rounded to f32). The
    /// averaged parameters are the state `ax`.
    pub struct AsgdConfig = "ASGD" {
        /// Learning rate η starts from.
        pub lr: f64,
        /// λ: the decay term.
        pub lambd: f64,
        /// α: the power η decays with.
        pub alpha: f64,
        /// The step after which the average starts.
        pub t0: f64,
        /// L2 penalty.
        pub weight_decay: f64,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: {
        lr: 1e-2, lambd: 1e-4, alpha: 0.75, t0: 1e6, weight_decay: 0.0, maximize: false,
    },
    non_negative: [
        lr, lambd = "lambd value", alpha = "alpha value", weight_decay = "weight_decay value",
    ],
    states: ["ax"],
    examples: [
        // t0 = 1: the average starts at step 3 of the matrix.
        { lr: 5e-2, lambd: 0.1, alpha: 0.5, t0: 1.0, weight_decay: 0.01, maximize: true },
        {},
        { lr: 0.1, lambd: 1e-2, t0: 20.0 },
    ],
    /// Fused ASGD (`torch.optim.ASGD`): see [`AsgdConfig`] for the rule.
    optimizer: Asgd,
}

impl RuleConfig for AsgdConfig {
    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        reference::asgd(t, step, self);
    }
}

impl Rule for AsgdConfig {}

rule_kernel! {
    /// `struct Asgd` of `shaders/rules/asgd.wgsl`: one row of the group table.
    "asgd" for [AsgdConfig] as c, uniform AsgdUniform = "Asgd" {
        /// Learning rate.
        lr: f32 = c.lr as f32,
        /// λ.
        lambd: f32 = c.lambd as f32,
        /// `λ·lr`, in f64 then rounded.
        lambd_lr: f32 = (c.lambd * c.lr) as f32,
        /// α.
        alpha: f32 = c.alpha as f32,
        /// t0.
        t0: f32 = c.t0 as f32,
        /// L2 penalty.
        weight_decay: f32 = c.weight_decay as f32,
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// Padding to a 16-byte row.
        _pad: u32 = 0,
    }
}
