//! Adam and AdamW, with amsgrad, maximize and optional bias correction.

use serde::{Deserialize, Serialize};

use super::engine::Rule;
use super::{check, check_non_negative, optimizer};
use crate::error::Result;
use crate::kernels::adam::{AdamUniform, SHADER};
use crate::reference;
use crate::shaders::{lerp_shape, RuleShader, SHAPE_AMSGRAD};

/// Declares an Adam-family config struct (the fields PyTorch's Adam and AdamW share, with
/// their own `weight_decay` default) and its [`Rule`]: one definition for both.
macro_rules! adam_config {
    ($(#[$doc:meta])* $name:ident, name: $torch:literal, weight_decay: $wd:expr, decoupled: $decoupled:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Learning rate (default 1e-3).
            pub lr: f64,
            /// (β1, β2) (default (0.9, 0.999)).
            pub betas: (f64, f64),
            /// Added to the denominator (default 1e-8).
            pub eps: f64,
            #[doc = concat!("Weight decay (default ", stringify!($wd), ").")]
            pub weight_decay: f64,
            /// Use the running maximum of v (Reddi et al. 2018, "On the Convergence of Adam and Beyond").
            pub amsgrad: bool,
            /// Maximize the objective instead of minimizing.
            pub maximize: bool,
            /// Divide by `1 − β^t` (default true; `false` is Apex's
            /// `FusedAdam(bias_correction=False)`, PyTorch has no such switch).
            pub bias_correction: bool,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    lr: 1e-3,
                    betas: (0.9, 0.999),
                    eps: 1e-8,
                    weight_decay: $wd,
                    amsgrad: false,
                    maximize: false,
                    bias_correction: true,
                }
            }
        }

        impl Rule for $name {
            const NAME: &'static str = $torch;
            const SHADER: &'static RuleShader = &SHADER;
            const BF16_STATES: bool = true;

            fn validate(&self) -> Result<()> {
                validate(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)
            }
            fn state_names(&self) -> [Option<&'static str>; 3] {
                [Some("exp_avg"), Some("exp_avg_sq"), self.amsgrad.then_some("max_exp_avg_sq")]
            }
            fn log_betas(&self) -> [f32; 2] {
                // ln β in f64, floored so β = 0 stays finite; 0 marks "no bias correction".
                let log = |b: f64| if self.bias_correction { b.ln().max(-100.0) as f32 } else { 0.0 };
                [log(self.betas.0), log(self.betas.1)]
            }
            fn uniform(&self) -> Vec<u8> {
                let u = AdamUniform::new(
                    self.lr,
                    self.betas,
                    self.eps,
                    self.weight_decay,
                    $decoupled,
                    self.amsgrad,
                    self.maximize,
                );
                bytemuck::bytes_of(&u).to_vec()
            }
            fn shape(&self) -> u32 {
                // The weight the kernel's lerp compares, as the group table holds it.
                let lerp = lerp_shape((1.0 - self.betas.0) as f32);
                lerp | if self.amsgrad { SHAPE_AMSGRAD } else { 0 }
            }
            fn host_update(
                &self,
                step: u32,
                params: &mut [f32],
                grads: &[f32],
                states: [Option<&mut [f32]>; 3],
            ) {
                let [exp_avg, exp_avg_sq, max_exp_avg_sq] = states;
                reference::adam(
                    params,
                    grads,
                    exp_avg.expect("exp_avg is always kept"),
                    exp_avg_sq.expect("exp_avg_sq is always kept"),
                    max_exp_avg_sq,
                    step,
                    self.lr,
                    self.betas,
                    self.eps,
                    self.weight_decay,
                    $decoupled,
                    self.maximize,
                    self.bias_correction,
                );
            }
        }
    };
}

adam_config! {
    /// Config of [`Adam`] (`torch.optim.Adam`, Kingma & Ba 2015); `Default` is PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient and `t` the step count:
    /// ```text
    /// g ← −g if maximize;  g ← g + weight_decay·p             (an L2 penalty)
    /// m ← lerp(m, g, 1 − β1);   v ← β2·v + (1 − β2)·g²
    /// v̂ ← max(v̂, v) if amsgrad, else v
    /// p ← p − (lr / (1 − β1^t)) · m / (sqrt(v̂) / sqrt(1 − β2^t) + eps)
    /// ```
    AdamConfig, name: "Adam", weight_decay: 0.0, decoupled: false
}

adam_config! {
    /// Config of [`AdamW`] (`torch.optim.AdamW`, Loshchilov & Hutter 2019, "Decoupled
    /// Weight Decay Regularization"); `Default` is PyTorch's (weight decay 1e-2).
    ///
    /// Adam's rule with the decay applied to the parameter, `p ← p·(1 − lr·weight_decay)`,
    /// before the step, instead of added to the gradient.
    AdamWConfig, name: "AdamW", weight_decay: 1e-2, decoupled: true
}

optimizer! {
    /// Fused Adam (`torch.optim.Adam`): see [`AdamConfig`] for the rule.
    Adam(AdamConfig)
}

optimizer! {
    /// Fused AdamW (`torch.optim.AdamW`): see [`AdamWConfig`] for the rule.
    AdamW(AdamWConfig)
}

/// PyTorch's checks of Adam and AdamW, with its messages' parameter names.
fn validate(
    name: &'static str,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
) -> Result<()> {
    check_non_negative(name, "lr", lr)?;
    check_non_negative(name, "eps", eps)?;
    let in_unit = |b: f64| (0.0..1.0).contains(&b);
    check(
        name,
        "beta parameter at index 0",
        betas.0,
        in_unit(betas.0),
        "must be in [0, 1)",
    )?;
    check(
        name,
        "beta parameter at index 1",
        betas.1,
        in_unit(betas.1),
        "must be in [0, 1)",
    )?;
    check_non_negative(name, "weight_decay", weight_decay)
}
