//! RMSprop, plain or centered, with momentum, weight decay and maximize.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{
    lerp_shape, rule_shader, RuleShader, SHAPE_CENTERED, SHAPE_MOMENTUM,
};
use crate::optim::engine::Rule;
use crate::optim::{check_non_negative, optimizer};
use crate::optim::{RuleConfig, TensorStep};
use crate::reference;

/// The RmsProp update body (`shaders/rules/rmsprop.wgsl`, which declares its group table); states
/// in slot order: `square_avg`, `grad_avg`, `momentum_buffer`.
pub(super) static SHADER: RuleShader = rule_shader!("rmsprop", RmsPropUniform, states: 3);

shared_struct! {
    /// `struct RmsProp` of `shaders/rules/rmsprop.wgsl`.
    RmsPropUniform = "RmsProp" {
        /// `−lr`.
        neg_lr: f32,
        /// Smoothing constant α.
        alpha: f32,
        /// `1 − α`, in f64 then rounded.
        one_minus_alpha: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// Momentum factor (0: no momentum buffer).
        momentum: f32,
        /// 1: centered (the `grad_avg` state is used).
        centered: u32,
        /// 1: maximize.
        maximize: u32,
    }
}

impl RmsPropUniform {
    /// The uniform of `torch.optim.RMSprop(lr, alpha, eps, weight_decay, momentum, centered, maximize)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        lr: f64,
        alpha: f64,
        eps: f64,
        weight_decay: f64,
        momentum: f64,
        centered: bool,
        maximize: bool,
    ) -> Self {
        RmsPropUniform {
            neg_lr: -lr as f32,
            alpha: alpha as f32,
            one_minus_alpha: (1.0 - alpha) as f32,
            eps: eps as f32,
            weight_decay: weight_decay as f32,
            momentum: momentum as f32,
            centered: u32::from(centered),
            maximize: u32::from(maximize),
        }
    }
}

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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant α (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Normalize by the estimated variance instead of the second moment.
    pub centered: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

optimizer! {
    /// Fused RMSprop (`torch.optim.RMSprop`): see [`RmsPropConfig`] for the rule.
    RmsProp(RmsPropConfig)
}

impl RuleConfig for RmsPropConfig {
    const NAME: &'static str = "RMSprop";

    fn examples() -> Vec<Self> {
        let d = RmsPropConfig::default();
        vec![
            RmsPropConfig {
                lr: 1e-3,
                centered: true,
                momentum: 0.5,
                ..d
            },
            d,
            RmsPropConfig {
                centered: true,
                ..d
            },
            RmsPropConfig { momentum: 0.9, ..d },
            RmsPropConfig {
                centered: true,
                momentum: 0.5,
                weight_decay: 0.01,
                ..d
            },
            // Centered with 1 − α ≥ 0.5: the gradient average takes lerp's second form.
            RmsPropConfig {
                maximize: true,
                alpha: 0.3,
                centered: true,
                ..d
            },
        ]
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [
            Some("square_avg"),
            self.centered.then_some("grad_avg"),
            (self.momentum > 0.0).then_some("momentum_buffer"),
        ]
    }

    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        let [square_avg, grad_avg, momentum_buffer] = t.states;
        reference::rmsprop(
            t.params,
            t.grads,
            square_avg.expect("square_avg is always kept"),
            grad_avg,
            momentum_buffer,
            self.lr,
            self.alpha,
            self.eps,
            self.weight_decay,
            self.momentum,
            self.maximize,
        );
    }
}

impl Rule for RmsPropConfig {
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_non_negative(Self::NAME, "lr", self.lr)?;
        check_non_negative(Self::NAME, "epsilon value", self.eps)?;
        check_non_negative(Self::NAME, "momentum value", self.momentum)?;
        check_non_negative(Self::NAME, "weight_decay value", self.weight_decay)?;
        check_non_negative(Self::NAME, "alpha value", self.alpha)
    }

    fn uniform(&self) -> Vec<u8> {
        let u = RmsPropUniform::new(
            self.lr,
            self.alpha,
            self.eps,
            self.weight_decay,
            self.momentum,
            self.centered,
            self.maximize,
        );
        bytemuck::bytes_of(&u).to_vec()
    }

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

/// Registers the rule ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<RmsPropConfig>();
}
