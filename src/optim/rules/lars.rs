//! LARS: SGD with momentum whose updates are scaled per tensor by a trust ratio (Optax's rule).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{rule_shader, RuleShader};
use crate::optim::engine::Rule;
use crate::optim::{check_non_negative, optimizer};
use crate::optim::{RuleConfig, TensorStep};
use crate::reference;

/// The LARS shaders: its group table, trust body and update body; states
/// in slot order: `momentum_buffer`.
pub(super) static SHADER: RuleShader = rule_shader!("lars", LarsUniform, states: 1, trust);

shared_struct! {
    /// `struct Lars` of `shaders/rules/lars_table.wgsl`.
    LarsUniform = "Lars" {
        /// `−lr`.
        neg_lr: f32,
        /// Weight decay added to the gradient before the trust ratio.
        weight_decay: f32,
        /// Momentum of the trace.
        momentum: f32,
        /// 1: Nesterov momentum.
        nesterov: u32,
        /// Trust coefficient.
        trust_coefficient: f32,
        /// Added to the update's norm in the trust ratio.
        eps: f32,
        /// 1: the group's updates are scaled by their trust ratio.
        trust: u32,
        /// Padding to a 16-byte row.
        _pad: u32,
    }
}

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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LarsConfig {
    /// Learning rate (default 0.1).
    pub lr: f64,
    /// Weight decay added to the gradient (default 0).
    pub weight_decay: f64,
    /// Trust coefficient (default 0.001).
    pub trust_coefficient: f64,
    /// Added to the update's norm in the trust ratio (default 0).
    pub eps: f64,
    /// Whether updates are scaled by the trust ratio (default true).
    pub trust: bool,
    /// Momentum (default 0.9).
    pub momentum: f64,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 0.1,
            weight_decay: 0.0,
            trust_coefficient: 0.001,
            eps: 0.0,
            trust: true,
            momentum: 0.9,
            nesterov: false,
        }
    }
}

optimizer! {
    /// Fused LARS (`optax.lars`): see [`LarsConfig`] for the rule. A step is a norm pass, a
    /// trust pass (per-chunk `Σp²`, `Σu²`), one fold of every tensor's ratio, and the update.
    Lars(LarsConfig)
}

impl RuleConfig for LarsConfig {
    const NAME: &'static str = "LARS";
    const TENSORWISE: bool = true;

    fn bytes_per_element(&self) -> u64 {
        // The norm's read 4; the trust pass reads p and g, 8; the update reads p, g and the
        // momentum and writes p and the momentum, 20.
        32
    }

    fn examples() -> Vec<Self> {
        let d = LarsConfig::default();
        vec![
            LarsConfig {
                lr: 0.5,
                weight_decay: 1e-3,
                trust_coefficient: 0.02,
                eps: 1e-6,
                nesterov: true,
                ..d
            },
            d,
            LarsConfig {
                trust: false,
                momentum: 0.0,
                ..d
            },
        ]
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [Some("momentum_buffer"), None, None]
    }

    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        let [momentum_buffer, _, _] = t.states;
        reference::lars(
            t.params,
            t.grads,
            momentum_buffer.expect("momentum_buffer is always kept"),
            self.lr,
            self.weight_decay,
            self.trust_coefficient,
            self.eps,
            self.trust,
            self.momentum,
            self.nesterov,
        );
    }
}

impl Rule for LarsConfig {
    const TORCH_STEP: bool = false;
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_non_negative(Self::NAME, "lr", self.lr)?;
        check_non_negative(Self::NAME, "weight_decay value", self.weight_decay)?;
        check_non_negative(Self::NAME, "trust_coefficient", self.trust_coefficient)?;
        check_non_negative(Self::NAME, "epsilon value", self.eps)?;
        check_non_negative(Self::NAME, "momentum value", self.momentum)
    }

    fn uniform(&self) -> Vec<u8> {
        let u = LarsUniform {
            neg_lr: -self.lr as f32,
            weight_decay: self.weight_decay as f32,
            momentum: self.momentum as f32,
            nesterov: u32::from(self.nesterov),
            trust_coefficient: self.trust_coefficient as f32,
            eps: self.eps as f32,
            trust: u32::from(self.trust),
            _pad: 0,
        };
        bytemuck::bytes_of(&u).to_vec()
    }
}

/// Registers the rule ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<LarsConfig>();
}
