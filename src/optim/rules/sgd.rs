//! SGD with momentum, dampening, Nesterov, weight decay and maximize.

use crate::error::Result;
use crate::kernels::shaders::{SHAPE_MOMENTUM, SHAPE_NESTEROV};
use crate::optim::declare::FieldChecks;
use crate::optim::engine::Rule;
use crate::optim::{check, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
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
    pub struct SgdConfig = "SGD" {
        /// Learning rate.
        pub lr: f64,
        /// Momentum factor μ (0: no momentum buffer is allocated).
        pub momentum: f64,
        /// Dampening of the momentum.
        pub dampening: f64,
        /// L2 penalty.
        pub weight_decay: f64,
        /// Nesterov momentum (needs momentum > 0 and dampening = 0).
        pub nesterov: bool,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: {
        lr: 1e-3, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false, maximize: false,
    },
    non_negative: [lr, momentum, weight_decay],
    states: ["momentum_buffer"],
    examples: [
        { lr: 0.05, momentum: 0.9, nesterov: true },
        { lr: 0.1 },
        { lr: 0.1, momentum: 0.9 },
        { lr: 0.1, momentum: 0.9, dampening: 0.1, weight_decay: 0.01 },
        { lr: 0.1, weight_decay: 0.05, maximize: true },
    ],
    /// Fused SGD (`torch.optim.SGD`): see [`SgdConfig`] for the rule.
    optimizer: Sgd,
}

impl RuleConfig for SgdConfig {
    fn state_names(&self) -> [Option<&'static str>; 3] {
        [
            (self.momentum != 0.0).then_some("momentum_buffer"),
            None,
            None,
        ]
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let (lr, momentum, dampening, wd) =
            (self.lr, self.momentum, self.dampening, self.weight_decay);
        reference::sgd(
            t,
            step == 1,
            lr,
            momentum,
            dampening,
            wd,
            self.nesterov,
            self.maximize,
        );
    }
}

impl Rule for SgdConfig {
    const TORCH_STEP: bool = false;

    fn validate(&self) -> Result<()> {
        self.check_fields()?;
        let (momentum, dampening) = (self.momentum, self.dampening);
        let finite = dampening.is_finite();
        check(Self::NAME, "dampening", dampening, finite, "must be finite")?;
        if self.nesterov {
            let why = "Nesterov momentum requires a momentum > 0";
            check(Self::NAME, "momentum", momentum, momentum > 0.0, why)?;
            let why = "Nesterov momentum requires zero dampening";
            check(Self::NAME, "dampening", dampening, dampening == 0.0, why)?;
        }
        Ok(())
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
}

rule_kernel! {
    /// `struct Sgd` of `shaders/rules/sgd.wgsl`: `torch.optim.SGD`'s scalar constants, computed
    /// in f64.
    "sgd" for [SgdConfig] as c, uniform SgdUniform = "Sgd" {
        /// `−lr`.
        neg_lr: f32 = -c.lr as f32,
        /// L2 penalty.
        weight_decay: f32 = c.weight_decay as f32,
        /// μ.
        momentum: f32 = c.momentum as f32,
        /// `1 − dampening`, in f64 then rounded.
        one_minus_dampening: f32 = (1.0 - c.dampening) as f32,
        /// 1: Nesterov momentum.
        nesterov: u32 = c.nesterov.into(),
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// 1: the momentum buffer is bound and used (momentum ≠ 0).
        has_momentum_buffer: u32 = (c.momentum != 0.0).into(),
        /// Uniforms are read in 16-byte rows.
        _pad: u32 = 0,
    }
}
