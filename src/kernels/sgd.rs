//! The SGD update (`shaders/rules/sgd.wgsl`): its uniform, with PyTorch's scalar constants
//! computed in f64 on the host. Bind groups and dispatch: [`super::update`].

use crate::abi::shared_struct;
use crate::shaders::RuleShader;

/// The Sgd update body (`shaders/rules/sgd.wgsl`, which declares its group table); states
/// in slot order: `momentum_buffer`.
pub(crate) static SHADER: RuleShader = RuleShader {
    name: "sgd",
    table: "",
    apply: include_str!("../../shaders/rules/sgd.wgsl"),
    trust: None,
    state_slots: 1,
};

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
    /// The uniform of `torch.optim.SGD(lr, momentum, dampening, weight_decay, nesterov, maximize)`.
    pub(crate) fn new(
        lr: f64,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: bool,
        maximize: bool,
    ) -> Self {
        SgdUniform {
            neg_lr: -lr as f32,
            momentum: momentum as f32,
            one_minus_dampening: (1.0 - dampening) as f32,
            weight_decay: weight_decay as f32,
            nesterov: u32::from(nesterov),
            maximize: u32::from(maximize),
            has_momentum_buffer: u32::from(momentum != 0.0),
            _pad: 0,
        }
    }
}
