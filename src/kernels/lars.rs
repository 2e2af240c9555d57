//! The LARS update (`shaders/rules/lars_table.wgsl`, `lars_trust.wgsl`, `lars.wgsl`): its uniform.
//! Bind groups and dispatch: [`super::update`] and [`super::trust`].

use crate::abi::shared_struct;
use crate::shaders::RuleShader;

/// The LARS shaders: its group table, trust body and update body; states
/// in slot order: `momentum_buffer`.
pub(crate) static SHADER: RuleShader = RuleShader {
    name: "lars",
    table: include_str!("../../shaders/rules/lars_table.wgsl"),
    apply: include_str!("../../shaders/rules/lars.wgsl"),
    trust: Some(include_str!("../../shaders/rules/lars_trust.wgsl")),
    state_slots: 1,
};

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
