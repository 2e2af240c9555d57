//! Lion: the sign of an interpolated momentum, with decoupled weight decay (Optax's rule).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{rule_shader, RuleShader};
use crate::optim::engine::Rule;
use crate::optim::{check, check_non_negative, optimizer};
use crate::optim::{RuleConfig, TensorStep};
use crate::reference;

/// The Lion update body (`shaders/rules/lion.wgsl`, which declares its group table); states
/// in slot order: `exp_avg`.
pub(super) static SHADER: RuleShader = rule_shader!("lion", LionUniform, states: 1);

shared_struct! {
    /// `struct Lion` of `shaders/rules/lion.wgsl`.
    LionUniform = "Lion" {
        /// `−lr`.
        neg_lr: f32,
        /// β1: weight of the momentum in the sign's argument.
        beta1: f32,
        /// `1 − β1`, in f64 then rounded.
        one_minus_beta1: f32,
        /// β2: decay of the momentum.
        beta2: f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32,
        /// Decoupled weight decay (multiplied by the learning rate, as Optax).
        weight_decay: f32,
        /// Padding to a 16-byte row.
        _pad0: u32,
        /// Padding.
        _pad1: u32,
    }
}

/// Config of [`Lion`] (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms";
/// `optax.lion`); `Default` is Optax's, with its learning rate of the paper's examples.
///
/// Per element, with `g` the clipped, unscaled gradient and `m` the momentum (`exp_avg`,
/// Optax's `mu`):
/// ```text
/// u ← sign((1 − β1)·g + β1·m) + weight_decay·p
/// p ← p − lr·u
/// m ← (1 − β2)·g + β2·m
/// ```
/// Same rule and order of operations as `optax.lion` (weight decay multiplied by the
/// learning rate, as Optax and PyTorch's AdamW do). PyTorch has no Lion; the state is named
/// `exp_avg` as in `lion-pytorch`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LionConfig {
    /// Learning rate (default 1e-4; the paper suggests 3–10× below AdamW's).
    pub lr: f64,
    /// `(β1, β2)`: the sign's interpolation and the momentum's decay (default (0.9, 0.99)).
    pub betas: (f64, f64),
    /// Decoupled weight decay (default 1e-3, Optax's).
    pub weight_decay: f64,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 1e-3,
        }
    }
}

optimizer! {
    /// Fused Lion (`optax.lion`): see [`LionConfig`] for the rule.
    Lion(LionConfig)
}

impl RuleConfig for LionConfig {
    const NAME: &'static str = "Lion";

    fn examples() -> Vec<Self> {
        let d = LionConfig {
            lr: 1e-3,
            ..Default::default()
        };
        vec![
            LionConfig {
                betas: (0.95, 0.98),
                weight_decay: 0.1,
                ..d
            },
            d,
            LionConfig {
                weight_decay: 0.0,
                ..d
            },
        ]
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [Some("exp_avg"), None, None]
    }

    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        let [exp_avg, _, _] = t.states;
        reference::lion(
            t.params,
            t.grads,
            exp_avg.expect("exp_avg is always kept"),
            self.lr,
            self.betas,
            self.weight_decay,
        );
    }
}

impl Rule for LionConfig {
    const TORCH_STEP: bool = false;
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_non_negative(Self::NAME, "lr", self.lr)?;
        check_non_negative(Self::NAME, "weight_decay value", self.weight_decay)?;
        for (name, beta) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            let ok = (0.0..=1.0).contains(&beta);
            check(Self::NAME, name, beta, ok, "must be in [0, 1]")?;
        }
        Ok(())
    }

    fn uniform(&self) -> Vec<u8> {
        let (b1, b2) = self.betas;
        let u = LionUniform {
            neg_lr: -self.lr as f32,
            beta1: b1 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            weight_decay: self.weight_decay as f32,
            ..Default::default()
        };
        bytemuck::bytes_of(&u).to_vec()
    }
}

/// Registers the rule ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<LionConfig>();
}
