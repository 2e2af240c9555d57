//! The RMSprop update (`shaders/rules/rmsprop.wgsl`): its uniform, with PyTorch's scalar
//! constants computed in f64 on the host. Bind groups and dispatch: [`super::update`].

use crate::abi::shared_struct;
use crate::shaders::RuleShader;

/// The RmsProp update body (`shaders/rules/rmsprop.wgsl`, which declares its group table); states
/// in slot order: `square_avg`, `grad_avg`, `momentum_buffer`.
pub(crate) static SHADER: RuleShader = RuleShader {
    name: "rmsprop",
    table: "",
    apply: include_str!("../../shaders/rules/rmsprop.wgsl"),
    trust: None,
    state_slots: 3,
};

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
