//! The Adagrad update (`shaders/rules/adagrad.wgsl`): its uniform. Bind groups and dispatch:
//! [`super::update`].

use crate::abi::shared_struct;
use crate::shaders::RuleShader;

/// The Adagrad update body (`shaders/rules/adagrad.wgsl`, which declares its group table); states
/// in slot order: `sum`.
pub(crate) static SHADER: RuleShader = RuleShader {
    name: "adagrad",
    table: "",
    apply: include_str!("../../shaders/rules/adagrad.wgsl"),
    trust: None,
    state_slots: 1,
};

shared_struct! {
    /// `struct Adagrad` of `shaders/rules/adagrad.wgsl`.
    AdagradUniform = "Adagrad" {
        /// Learning rate.
        lr: f32,
        /// Learning-rate decay per step.
        lr_decay: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// 1: maximize.
        maximize: u32,
        /// Padding to a 16-byte row.
        _pad0: u32,
        /// Padding.
        _pad1: u32,
        /// Padding.
        _pad2: u32,
    }
}
