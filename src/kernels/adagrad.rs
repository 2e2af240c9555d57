//! The Adagrad update (`shaders/adagrad.wgsl`): its uniform. Bind groups and dispatch:
//! [`super::update`].

use crate::abi::shared_struct;

/// State bindings `shaders/adagrad.wgsl` declares: `state_sum`.
pub(crate) const STATE_SLOTS: usize = 1;

shared_struct! {
    /// `struct Adagrad` of `shaders/adagrad.wgsl`.
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
