//! The Lion update (`shaders/rules/lion.wgsl`): its uniform, with Optax's scalar constants
//! `1 − β` computed in f64 on the host. Bind groups and dispatch: [`super::update`].

use crate::abi::shared_struct;
use crate::shaders::RuleShader;

/// The Lion update body (`shaders/rules/lion.wgsl`, which declares its group table); states
/// in slot order: `exp_avg`.
pub(crate) static SHADER: RuleShader = RuleShader {
    name: "lion",
    table: "",
    apply: include_str!("../../shaders/rules/lion.wgsl"),
    trust: None,
    state_slots: 1,
};

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
