//! Adam and AdamW, with amsgrad, maximize and optional bias correction.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{lerp_shape, rule_shader, RuleShader, SHAPE_AMSGRAD};
use crate::optim::engine::Rule;
use crate::optim::{check_adam_family, optimizer, RuleConfig, TensorStep};
use crate::reference;

/// The Adam update body (`shaders/rules/adam.wgsl`, which declares its group table); states
/// in slot order: `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`.
pub(super) static SHADER: RuleShader = rule_shader!("adam", AdamUniform, states: 3);

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

/// Declares an Adam-family config struct (the fields PyTorch's Adam and AdamW share, with
/// their own `weight_decay` default) and its [`Rule`]: one definition for both.
macro_rules! adam_config {
    ($(#[$doc:meta])* $name:ident, name: $torch:literal, optimizer: $opt:ident, weight_decay: $wd:expr, decoupled: $decoupled:expr, examples: $examples:expr) => {
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

        impl RuleConfig for $name {
            const NAME: &'static str = $torch;

            fn examples() -> Vec<Self> {
                let d = $name::default();
                $examples(d)
            }
            fn state_names(&self) -> [Option<&'static str>; 3] {
                [Some("exp_avg"), Some("exp_avg_sq"), self.amsgrad.then_some("max_exp_avg_sq")]
            }
            fn reference_step(&self, step: u32, t: TensorStep<'_>) {
                let [exp_avg, exp_avg_sq, max_exp_avg_sq] = t.states;
                reference::adam(
                    t.params,
                    t.grads,
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

        impl Rule for $name {
            const SHADER: &'static RuleShader = &SHADER;
            const BF16_STATES: bool = true;

            fn validate(&self) -> Result<()> {
                check_adam_family(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)
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
    AdamConfig, name: "Adam", optimizer: Adam, weight_decay: 0.0, decoupled: false,
    examples: |d: AdamConfig| {
        let first = AdamConfig { amsgrad: true, weight_decay: 0.01, ..d };
        let d = AdamConfig { lr: 1e-2, ..d };
        vec![
            first,
            d,
            AdamConfig { weight_decay: 0.01, maximize: true, ..d },
            AdamConfig { bias_correction: false, ..d },
            // 1 − β ≥ 0.5 takes torch.lerp's second formula.
            AdamConfig { betas: (0.3, 0.6), amsgrad: true, ..d },
        ]
    }
}

adam_config! {
    /// Config of [`AdamW`] (`torch.optim.AdamW`, Loshchilov & Hutter 2019, "Decoupled
    /// Weight Decay Regularization"); `Default` is PyTorch's (weight decay 1e-2).
    ///
    /// Adam's rule with the decay applied to the parameter, `p ← p·(1 − lr·weight_decay)`,
    /// before the step, instead of added to the gradient.
    AdamWConfig, name: "AdamW", optimizer: AdamW, weight_decay: 1e-2, decoupled: true,
    examples: |d: AdamWConfig| vec![
        d,
        AdamWConfig { lr: 1e-2, ..d },
        AdamWConfig { lr: 1e-2, amsgrad: true, weight_decay: 0.1, ..d },
    ]
}

optimizer! {
    /// Fused Adam (`torch.optim.Adam`): see [`AdamConfig`] for the rule.
    Adam(AdamConfig)
}

optimizer! {
    /// Fused AdamW (`torch.optim.AdamW`): see [`AdamWConfig`] for the rule.
    AdamW(AdamWConfig)
}

/// Registers Adam and AdamW ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<AdamConfig>();
    visitor.visit::<AdamWConfig>();
}
