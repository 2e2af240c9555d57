//! LARS: SGD with momentum whose updates are scaled per tensor by a trust ratio (Optax's rule).

use crate::optim::engine::Rule;
use crate::optim::{rule, rule_kernel, RuleConfig};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`Lars`] (You et al. 2017, "Large Batch Training of Convolutional Networks";
    /// `optax.lars`); `Default` is Optax's, with a learning rate of 0.1 (Optax has none).
    ///
    /// Per tensor, with `g` the clipped, unscaled gradient and `b` the momentum (`momentum_buffer`,
    /// Optax's `trace`):
    /// ```text
    /// u ← g + weight_decay·p
    /// u ← u · trust_coefficient·‖p‖ / (‖u‖ + eps)     if trust (1 when a norm is 0)
    /// u ← −lr·u;  b ← u + momentum·b;  p ← p + (u + momentum·b if nesterov, else b)
    /// ```
    /// Optax's `weight_decay_mask` and `trust_ratio_mask` are parameter groups here: a group
    /// of 1-D tensors with `weight_decay: 0.0, trust: false`, as the paper excludes them.
    pub struct LarsConfig = "LARS" {
        /// Learning rate.
        pub lr: f64,
        /// Weight decay added to the gradient.
        pub weight_decay: f64,
        /// Trust coefficient.
        pub trust_coefficient: f64,
        /// Added to the update's norm in the trust ratio.
        pub eps: f64,
        /// Whether updates are scaled by the trust ratio.
        pub trust: bool,
        /// Momentum.
        pub momentum: f64,
        /// Nesterov momentum.
        pub nesterov: bool,
    }
    default: {
        lr: 0.1, weight_decay: 0.0, trust_coefficient: 0.001, eps: 0.0, trust: true, momentum: 0.9,
        nesterov: false,
    },
    non_negative: [
        lr, weight_decay = "weight_decay value", trust_coefficient, eps = "epsilon value",
        momentum = "momentum value",
    ],
    states: ["momentum_buffer"],
    examples: [
        { lr: 0.5, weight_decay: 1e-3, trust_coefficient: 0.02, eps: 1e-6, nesterov: true },
        {},
        { trust: false, momentum: 0.0 },
    ],
    /// Fused LARS (`optax.lars`): see [`LarsConfig`] for the rule. A step is a norm pass, a
    /// trust pass (per-chunk `Σp²`, `Σu²`), one fold of every tensor's ratio, and the update.
    optimizer: Lars,
}

impl RuleConfig for LarsConfig {
    const TENSORWISE: bool = true;

    fn bytes_per_element(&self) -> u64 {
        // The norm's read 4; the trust pass reads p and g, 8; the update reads p, g and the
        // momentum and writes p and the momentum, 20.
        32
    }

    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        let (lr, wd, coefficient, eps) =
            (self.lr, self.weight_decay, self.trust_coefficient, self.eps);
        reference::lars(
            t,
            lr,
            wd,
            coefficient,
            eps,
            self.trust,
            self.momentum,
            self.nesterov,
        );
    }
}

impl Rule for LarsConfig {
    const TORCH_STEP: bool = false;
}

rule_kernel! {
    /// `struct Lars` of `shaders/rules/lars_table.wgsl`.
    "lars" with trust for [LarsConfig] as c, uniform LarsUniform = "Lars" {
        /// `−lr`.
        neg_lr: f32 = -c.lr as f32,
        /// Weight decay added to the gradient before the trust ratio.
        weight_decay: f32 = c.weight_decay as f32,
        /// Momentum of the trace.
        momentum: f32 = c.momentum as f32,
        /// 1: Nesterov momentum.
        nesterov: u32 = c.nesterov.into(),
        /// Trust coefficient.
        trust_coefficient: f32 = c.trust_coefficient as f32,
        /// Added to the update's norm in the trust ratio.
        eps: f32 = c.eps as f32,
        /// 1: the group's updates are scaled by their trust ratio.
        trust: u32 = c.trust.into(),
        /// Padding to a 16-byte row.
        _pad: u32 = 0,
    }
}
