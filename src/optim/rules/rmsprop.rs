//! RMSprop, plain or centered, with momentum, weight decay and maximize.

use crate::kernels::shaders::{lerp_shape, SHAPE_CENTERED, SHAPE_MOMENTUM};
use crate::optim::engine::Rule;
use crate::optim::{rule, rule_kernel, RuleConfig};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`RmsProp`] (`torch.optim.RMSprop`, Hinton's lecture 6e); `Default` is PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient:
    /// ```text
    /// g ← −g if maximize;  g ← g + weight_decay·p
    /// s ← α·s + (1 − α)·g²
    /// avg ← sqrt(s − a²) + eps with a ← lerp(a, g, 1 − α) if centered, else sqrt(s) + eps
    /// if momentum > 0:  b ← momentum·b + g / avg;  p ← p − lr·b
    /// else              p ← p − lr·g / avg
    /// ```
    /// Same rule as PyTorch's.
    pub struct RmsPropConfig = "RMSprop" {
        /// Learning rate.
        pub lr: f64,
        /// Smoothing constant α.
        pub alpha: f64,
        /// Added to the denominator.
        pub eps: f64,
        /// L2 penalty.
        pub weight_decay: f64,
        /// Momentum factor.
        pub momentum: f64,
        /// Normalize by the estimated variance instead of the second moment.
        pub centered: bool,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: {
        lr: 1e-2, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false,
        maximize: false,
    },
    non_negative: [
        lr, eps = "epsilon value", momentum = "momentum value",
        weight_decay = "weight_decay value", alpha = "alpha value",
    ],
    states: ["square_avg", "grad_avg", "momentum_buffer"],
    examples: [
        { lr: 1e-3, centered: true, momentum: 0.5 },
        {},
        { centered: true },
        { momentum: 0.9 },
        { centered: true, momentum: 0.5, weight_decay: 0.01 },
        // Centered with 1 − α ≥ 0.5: the gradient average takes lerp's second form.
        { maximize: true, alpha: 0.3, centered: true },
    ],
    /// Fused RMSprop (`torch.optim.RMSprop`): see [`RmsPropConfig`] for the rule.
    optimizer: RmsProp,
}

impl RuleConfig for RmsPropConfig {
    fn state_names(&self) -> [Option<&'static str>; 3] {
        [
            Some("square_avg"),
            self.centered.then_some("grad_avg"),
            (self.momentum > 0.0).then_some("momentum_buffer"),
        ]
    }

    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        let (lr, alpha, eps, wd, momentum) = (
            self.lr,
            self.alpha,
            self.eps,
            self.weight_decay,
            self.momentum,
        );
        reference::rmsprop(t, lr, alpha, eps, wd, momentum, self.maximize);
    }
}

impl Rule for RmsPropConfig {
    fn shape(&self) -> u32 {
        // The centered kernel lerps the gradient average by 1 − α, as the table holds it.
        let centered = if self.centered {
            SHAPE_CENTERED | lerp_shape((1.0 - self.alpha) as f32)
        } else {
            0
        };
        // The kernel's momentum branch is taken where momentum > 0 (as f32, as the table).
        let momentum = if self.momentum as f32 > 0.0 {
            SHAPE_MOMENTUM
        } else {
            0
        };
        centered | momentum
    }
}

rule_kernel! {
    /// `struct RmsProp` of `shaders/rules/rmsprop.wgsl`.
    "rmsprop" for [RmsPropConfig] as c, uniform RmsPropUniform = "RmsProp" {
        /// `−lr`.
        neg_lr: f32 = -c.lr as f32,
        /// Smoothing constant α.
        alpha: f32 = c.alpha as f32,
        /// `1 − α`, in f64 then rounded.
        one_minus_alpha: f32 = (1.0 - c.alpha) as f32,
        /// Added to the denominator.
        eps: f32 = c.eps as f32,
        /// L2 penalty.
        weight_decay: f32 = c.weight_decay as f32,
        /// Momentum factor (0: no momentum buffer).
        momentum: f32 = c.momentum as f32,
        /// 1: centered (the `grad_avg` state is used).
        centered: u32 = c.centered.into(),
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
    }
}
