//! NAdam: Adam with Nesterov momentum and a momentum schedule (PyTorch's rule).

use crate::error::Result;
use crate::kernels::abi::SCHEDULE_NADAM;
use crate::kernels::shaders::lerp_shape;
use crate::optim::engine::{Rule, Schedule};
use crate::optim::{check_adam_family, check_non_negative, rule, rule_kernel};
use crate::optim::{RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`NAdam`] (`torch.optim.NAdam`, Dozat 2016, "Incorporating Nesterov
    /// Momentum into Adam"); `Default` is PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient and `t` the step count:
    /// ```text
    /// g ← −g if maximize
    /// decoupled_weight_decay: p ← p·(1 − lr·weight_decay)   else: g ← g + weight_decay·p
    /// μ_t = β1·(1 − 0.5·0.96^(t·momentum_decay));   Π_t = μ_1·…·μ_t
    /// m ← lerp(m, g, 1 − β1);   v ← β2·v + (1 − β2)·g²
    /// d = sqrt(v / (1 − β2^t)) + eps
    /// p ← p − lr·(1 − μ_t) / (1 − Π_t) · g / d − lr·μ_{t+1} / (1 − Π_t·μ_{t+1}) · m / d
    /// ```
    /// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`);
    /// PyTorch's per-tensor `mu_product` (Π_t) is not a state here: the step's finalize
    /// recomputes it from the step count the device keeps (`shaders/norm_finalize.wgsl`).
    pub struct NAdamConfig = "NAdam" {
        /// Learning rate.
        pub lr: f64,
        /// (β1, β2): the moments' decays.
        pub betas: (f64, f64),
        /// Added to the denominator.
        pub eps: f64,
        /// Weight decay: an L2 penalty, or decoupled (AdamW's) with `decoupled_weight_decay`.
        pub weight_decay: f64,
        /// ψ: how fast the momentum schedule μ_t rises to β1.
        pub momentum_decay: f64,
        /// Decay the parameter (`p·(1 − lr·weight_decay)`) instead of the gradient.
        pub decoupled_weight_decay: bool,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: {
        lr: 2e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, momentum_decay: 4e-3,
        decoupled_weight_decay: false, maximize: false,
    },
    non_negative: [],
    states: ["exp_avg", "exp_avg_sq"],
    examples: [
        { lr: 1e-2, betas: (0.8, 0.99), weight_decay: 0.01, momentum_decay: 0.1, maximize: true },
        {},
        { lr: 1e-2, weight_decay: 0.1, decoupled_weight_decay: true },
        // 1 − β1 ≥ 0.5 takes torch.lerp's second formula.
        { lr: 1e-2, betas: (0.3, 0.9) },
    ],
    /// Fused NAdam (`torch.optim.NAdam`): see [`NAdamConfig`] for the rule.
    optimizer: NAdam,
}

impl RuleConfig for NAdamConfig {
    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        reference::nadam(t, step, self);
    }
}

impl Rule for NAdamConfig {
    const BF16_STATES: bool = true;

    fn validate(&self) -> Result<()> {
        check_adam_family(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)?;
        check_non_negative(Self::NAME, "momentum_decay value", self.momentum_decay)
    }

    fn schedule(&self) -> Schedule {
        // Only 1 − β2^t (ln β floored so β = 0 stays finite): NAdam's first moment has the
        // momentum schedule instead.
        Schedule {
            log_beta2: self.betas.1.ln().max(-100.0) as f32,
            kind: SCHEDULE_NADAM,
            beta1: self.betas.0 as f32,
            log_momentum_decay: (self.momentum_decay * 0.96f64.ln()) as f32,
            ..Default::default()
        }
    }

    fn shape(&self) -> u32 {
        // The weight the kernel's lerp compares, as the group table holds it.
        lerp_shape((1.0 - self.betas.0) as f32)
    }
}

rule_kernel! {
    /// `struct NAdam` of `shaders/rules/nadam.wgsl`: one row of the group table.
    "nadam" for [NAdamConfig] as c, uniform NAdamUniform = "NAdam" {
        /// `−lr`.
        neg_lr: f32 = -c.lr as f32,
        /// `1 − β1`, in f64 then rounded: the weight of `torch.lerp`.
        one_minus_beta1: f32 = (1.0 - c.betas.0) as f32,
        /// β2.
        beta2: f32 = c.betas.1 as f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32 = (1.0 - c.betas.1) as f32,
        /// Added to the denominator.
        eps: f32 = c.eps as f32,
        /// Weight decay (L2 penalty, or decoupled).
        weight_decay: f32 = c.weight_decay as f32,
        /// `1 − lr·weight_decay`, in f64 then rounded (decoupled decay).
        decay_factor: f32 = (1.0 - c.lr * c.weight_decay) as f32,
        /// Bit 0: maximize; bit 1: decoupled weight decay.
        flags: u32 = u32::from(c.maximize) | (u32::from(c.decoupled_weight_decay) << 1),
    }
}
