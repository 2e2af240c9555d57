//! Adamax: Adam with the infinity norm in place of the second moment (PyTorch's rule).

use crate::error::Result;
use crate::kernels::shaders::lerp_shape;
use crate::optim::engine::Rule;
use crate::optim::{check_adam_family, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`Adamax`] (`torch.optim.Adamax`, Kingma & Ba 2015, §7.1); `Default` is
    /// PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient and `t` the step count:
    /// ```text
    /// g ← −g if maximize;  g ← g + weight_decay·p
    /// m ← lerp(m, g, 1 − β1);   u ← max(β2·u, |g| + eps)
    /// p ← p + (−lr / (1 − β1^t))·m / u
    /// ```
    /// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`);
    /// the states are PyTorch's `exp_avg` and `exp_inf`.
    pub struct AdamaxConfig = "Adamax" {
        /// Learning rate.
        pub lr: f64,
        /// (β1, β2): the first moment's and the infinity norm's decay.
        pub betas: (f64, f64),
        /// Added to `|g|`.
        pub eps: f64,
        /// L2 penalty.
        pub weight_decay: f64,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: { lr: 2e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, maximize: false },
    non_negative: [],
    states: ["exp_avg", "exp_inf"],
    examples: [{}, { lr: 1e-2, betas: (0.8, 0.99), weight_decay: 0.01, maximize: true }],
    /// Fused Adamax (`torch.optim.Adamax`): see [`AdamaxConfig`] for the rule.
    optimizer: Adamax,
}

impl RuleConfig for AdamaxConfig {
    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let (lr, betas, eps, wd) = (self.lr, self.betas, self.eps, self.weight_decay);
        reference::adamax(t, step, lr, betas, eps, wd, self.maximize);
    }
}

impl Rule for AdamaxConfig {
    fn validate(&self) -> Result<()> {
        check_adam_family(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)
    }

    fn log_betas(&self) -> [f32; 2] {
        // ln β1 for the bias correction 1 − β1^t, floored so β1 = 0 stays finite; the
        // infinity norm has none.
        [self.betas.0.ln().max(-100.0) as f32, 0.0]
    }

    fn shape(&self) -> u32 {
        // The weight the kernel's lerp compares, as the group table holds it.
        lerp_shape((1.0 - self.betas.0) as f32)
    }
}

rule_kernel! {
    /// `struct Adamax` of `shaders/rules/adamax.wgsl`: one row of the group table.
    "adamax" for [AdamaxConfig] as c, uniform AdamaxUniform = "Adamax" {
        /// Learning rate.
        lr: f32 = c.lr as f32,
        /// `1 − β1`, in f64 then rounded: the weight of `torch.lerp`.
        one_minus_beta1: f32 = (1.0 - c.betas.0) as f32,
        /// β2: the decay of the infinity norm.
        beta2: f32 = c.betas.1 as f32,
        /// Added to `|g|` before the maximum.
        eps: f32 = c.eps as f32,
        /// L2 penalty.
        weight_decay: f32 = c.weight_decay as f32,
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// Padding to a 16-byte row.
        _pad: [u32; 2] = [0; 2],
    }
}
