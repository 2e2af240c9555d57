//! SGD with momentum, dampening, Nesterov, weight decay and maximize.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{rule_shader, RuleShader, SHAPE_MOMENTUM, SHAPE_NESTEROV};
use crate::optim::engine::Rule;
use crate::optim::{check, check_non_negative, optimizer};
use crate::optim::{RuleConfig, TensorStep};
use crate::reference;

/// The Sgd update body (`shaders/rules/sgd.wgsl`, which declares its group table); states
/// in slot order: `momentum_buffer`.
pub(super) static SHADER: RuleShader = rule_shader!("sgd", SgdUniform, states: 1);

shared_struct! {
    /// `struct Sgd` of `shaders/rules/sgd.wgsl`.
    SgdUniform = "Sgd" {
        /// `−lr`.
        neg_lr: f32,
        /// μ.
        momentum: f32,
        /// `1 − dampening`, in f64 then rounded.
        one_minus_dampening: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// 1: Nesterov momentum.
        nesterov: u32,
        /// 1: maximize.
        maximize: u32,
        /// 1: the momentum buffer is bound and used (momentum ≠ 0).
        has_momentum_buffer: u32,
        /// Uniforms are read in 16-byte rows.
        _pad: u32,
    }
}

impl SgdUniform {
    /// The uniform of `torch.optim.SGD(lr, momentum, dampening, weight_decay, nesterov,
    /// maximize)`, PyTorch's scalar constants computed in f64.
    fn of(c: &SgdConfig) -> Self {
        SgdUniform {
            neg_lr: -c.lr as f32,
            momentum: c.momentum as f32,
            one_minus_dampening: (1.0 - c.dampening) as f32,
            weight_decay: c.weight_decay as f32,
            nesterov: u32::from(c.nesterov),
            maximize: u32::from(c.maximize),
            has_momentum_buffer: u32::from(c.momentum != 0.0),
            _pad: 0,
        }
    }
}

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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate (PyTorch default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (default 0: no momentum buffer is allocated).
    pub momentum: f64,
    /// Dampening of the momentum (default 0).
    pub dampening: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening = 0).
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

optimizer! {
    /// Fused SGD (`torch.optim.SGD`): see [`SgdConfig`] for the rule.
    Sgd(SgdConfig)
}

impl RuleConfig for SgdConfig {
    const NAME: &'static str = "SGD";

    fn examples() -> Vec<Self> {
        let d = SgdConfig {
            lr: 0.1,
            ..Default::default()
        };
        vec![
            SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
                ..d
            },
            d,
            SgdConfig { momentum: 0.9, ..d },
            SgdConfig {
                momentum: 0.9,
                dampening: 0.1,
                weight_decay: 0.01,
                ..d
            },
            SgdConfig {
                weight_decay: 0.05,
                maximize: true,
                ..d
            },
        ]
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [
            (self.momentum != 0.0).then_some("momentum_buffer"),
            None,
            None,
        ]
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let [momentum_buffer, _, _] = t.states;
        reference::sgd(
            t.params,
            t.grads,
            momentum_buffer,
            step == 1,
            self.lr,
            self.momentum,
            self.dampening,
            self.weight_decay,
            self.nesterov,
            self.maximize,
        );
    }
}

impl Rule for SgdConfig {
    const TORCH_STEP: bool = false;
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_non_negative(Self::NAME, "lr", self.lr)?;
        check_non_negative(Self::NAME, "momentum", self.momentum)?;
        check(
            Self::NAME,
            "dampening",
            self.dampening,
            self.dampening.is_finite(),
            "must be finite",
        )?;
        check_non_negative(Self::NAME, "weight_decay", self.weight_decay)?;
        if self.nesterov {
            check(
                Self::NAME,
                "momentum",
                self.momentum,
                self.momentum > 0.0,
                "Nesterov momentum requires a momentum > 0",
            )?;
            check(
                Self::NAME,
                "dampening",
                self.dampening,
                self.dampening == 0.0,
                "Nesterov momentum requires zero dampening",
            )?;
        }
        Ok(())
    }

    fn uniform(&self) -> Vec<u8> {
        let u = SgdUniform::of(self);
        bytemuck::bytes_of(&u).to_vec()
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

/// Registers the rule ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<SgdConfig>();
}
