//! The LAMB update (`shaders/rules/lamb_table.wgsl`, `lamb_trust.wgsl`, `lamb.wgsl`): its uniform,
//! `1 − β` computed in f64 on the host. Bind groups and dispatch: [`super::update`] and
//! [`super::trust`].

use crate::abi::shared_struct;
use crate::shaders::RuleShader;

/// The LAMB shaders: its group table, trust body and update body; states
/// in slot order: `exp_avg`, `exp_avg_sq`.
pub(crate) static SHADER: RuleShader = RuleShader {
    name: "lamb",
    table: include_str!("../../shaders/rules/lamb_table.wgsl"),
    apply: include_str!("../../shaders/rules/lamb.wgsl"),
    trust: Some(include_str!("../../shaders/rules/lamb_trust.wgsl")),
    state_slots: 2,
};

shared_struct! {
    /// `struct Lamb` of `shaders/rules/lamb_table.wgsl`.
    LambUniform = "Lamb" {
        /// `−lr`.
        neg_lr: f32,
        /// β1.
        beta1: f32,
        /// `1 − β1`, in f64 then rounded.
        one_minus_beta1: f32,
        /// β2.
        beta2: f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// Added inside the square root.
        eps_root: f32,
        /// Decoupled weight decay, added before the trust ratio.
        weight_decay: f32,
    }
}
