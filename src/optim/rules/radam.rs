//! RAdam: Adam whose adaptive step is switched on, and rectified, once the variance of its
//! second moment is tractable (PyTorch's rule).

use crate::error::Result;
use crate::kernels::abi::SCHEDULE_RADAM;
use crate::kernels::shaders::lerp_shape;
use crate::optim::engine::{Rule, Schedule};
use crate::optim::{check_adam_family, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`RAdam`] (`torch.optim.RAdam`, Liu et al. 2020, "On the Variance of the
    /// Adaptive Learning Rate and Beyond"); `Default` is PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient and `t` the step count:
    /// ```text
    /// g ← −g if maximize
    /// decoupled_weight_decay: p ← p·(1 − lr·weight_decay)   else: g ← g + weight_decay·p
    /// m ← lerp(m, g, 1 − β1);   v ← β2·v + (1 − β2)·g²
    /// ρ∞ = 2 / (1 − β2) − 1;    ρt = ρ∞ − 2t·β2^t / (1 − β2^t)
    /// ρt > 5:  r = sqrt((ρt − 4)(ρt − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρt))
    ///          p ← p − (m / (1 − β1^t))·lr · sqrt(1 − β2^t) / (sqrt(v) + eps) · r
    /// else:    p ← p − (m / (1 − β1^t))·lr
    /// ```
    /// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`);
    /// the switch is taken on the device, per group, from the step the device counted.
    pub struct RAdamConfig = "RAdam" {
        /// Learning rate.
        pub lr: f64,
        /// (β1, β2): the moments' decays.
        pub betas: (f64, f64),
        /// Added to the denominator.
        pub eps: f64,
        /// Weight decay: an L2 penalty, or decoupled (AdamW's) with `decoupled_weight_decay`.
        pub weight_decay: f64,
        /// Decay the parameter (`p·(1 − lr·weight_decay)`) instead of the gradient.
        pub decoupled_weight_decay: bool,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: {
        lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0,
        decoupled_weight_decay: false, maximize: false,
    },
    non_negative: [],
    states: ["exp_avg", "exp_avg_sq"],
    examples: [
        // β2 = 0.9: the rectification switches on at step 6 of the trajectories.
        { lr: 1e-2, betas: (0.8, 0.9), weight_decay: 0.01, maximize: true },
        {},
        { lr: 1e-2, weight_decay: 0.1, decoupled_weight_decay: true },
        // 1 − β1 ≥ 0.5 takes torch.lerp's second formula.
        { lr: 1e-2, betas: (0.3, 0.9) },
    ],
    /// Fused RAdam (`torch.optim.RAdam`): see [`RAdamConfig`] for the rule.
    optimizer: RAdam,
}

impl RuleConfig for RAdamConfig {
    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let (lr, betas, eps, wd) = (self.lr, self.betas, self.eps, self.weight_decay);
        let (decoupled, maximize) = (self.decoupled_weight_decay, self.maximize);
        reference::radam(t, step, lr, betas, eps, wd, decoupled, maximize);
    }
}

impl Rule for RAdamConfig {
    const BF16_STATES: bool = true;

    fn validate(&self) -> Result<()> {
        check_adam_family(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)
    }

    fn schedule(&self) -> Schedule {
        // ln β in f64, floored so β = 0 stays finite: the finalize's 1 − β^t, and from
        // ln β2 its ρt and rectification.
        let log = |b: f64| b.ln().max(-100.0) as f32;
        Schedule {
            log_beta1: log(self.betas.0),
            log_beta2: log(self.betas.1),
            kind: SCHEDULE_RADAM,
            ..Default::default()
        }
    }

    fn shape(&self) -> u32 {
        // The weight the kernel's lerp compares, as the group table holds it.
        lerp_shape((1.0 - self.betas.0) as f32)
    }
}

rule_kernel! {
    /// `struct RAdam` of `shaders/rules/radam.wgsl`: one row of the group table.
    "radam" for [RAdamConfig] as c, uniform RAdamUniform = "RAdam" {
        /// Learning rate.
        lr: f32 = c.lr as f32,
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
