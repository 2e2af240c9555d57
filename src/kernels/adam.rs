//! The Adam / AdamW update (`shaders/rules/adam.wgsl`): its uniform, with PyTorch's scalar
//! constants computed in f64 on the host. Bind groups and dispatch: [`super::update`].

use crate::abi::shared_struct;
use crate::shaders::RuleShader;

/// The Adam update body (`shaders/rules/adam.wgsl`, which declares its group table); states
/// in slot order: `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`.
pub(crate) static SHADER: RuleShader = RuleShader {
    name: "adam",
    table: "",
    apply: include_str!("../../shaders/rules/adam.wgsl"),
    trust: None,
    state_slots: 3,
};

shared_struct! {
    /// `struct Adam` of `shaders/rules/adam.wgsl`.
    AdamUniform = "Adam" {
        /// Learning rate.
        lr: f32,
        /// `1 − β1`, in f64 then rounded.
        one_minus_beta1: f32,
        /// β2.
        beta2: f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// Weight decay (L2 penalty, or decoupled).
        weight_decay: f32,
        /// `1 − lr·weight_decay`, in f64 then rounded (decoupled decay).
        decay_factor: f32,
        /// 1: amsgrad.
        amsgrad: u32,
        /// 1: maximize.
        maximize: u32,
        /// 1: AdamW's decoupled weight decay.
        decoupled_weight_decay: u32,
        /// Uniforms are read in 16-byte rows.
        _pad: [u32; 2],
    }
}

impl AdamUniform {
    /// The uniform of `torch.optim.Adam/AdamW(lr, betas, eps, weight_decay, amsgrad, maximize)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
        decoupled_weight_decay: bool,
        amsgrad: bool,
        maximize: bool,
    ) -> Self {
        AdamUniform {
            lr: lr as f32,
            one_minus_beta1: (1.0 - betas.0) as f32,
            beta2: betas.1 as f32,
            one_minus_beta2: (1.0 - betas.1) as f32,
            eps: eps as f32,
            weight_decay: weight_decay as f32,
            decay_factor: (1.0 - lr * weight_decay) as f32,
            amsgrad: u32::from(amsgrad),
            maximize: u32::from(maximize),
            decoupled_weight_decay: u32::from(decoupled_weight_decay),
            _pad: [0; 2],
        }
    }
}
