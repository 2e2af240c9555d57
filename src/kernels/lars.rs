//! The LARS update (`shaders/lars_rule.wgsl`, `lars_trust.wgsl`, `lars.wgsl`): its uniform.
//! Bind groups and dispatch: [`super::update`] and [`super::trust`].

use crate::abi::shared_struct;

/// State bindings the LARS kernels declare: `momentum_buffer`.
pub(crate) const STATE_SLOTS: usize = 1;

shared_struct! {
    /// `struct Lars` of `shaders/lars_rule.wgsl`.
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
