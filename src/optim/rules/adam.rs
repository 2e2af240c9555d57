//! Adam and AdamW, with amsgrad, maximize and optional bias correction.

use crate::error::Result;
use crate::kernels::shaders::{lerp_shape, SHAPE_AMSGRAD};
use crate::optim::engine::Rule;
use crate::optim::{check_adam_family, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

/// Whether a config of the Adam family decays weights decoupled from the gradient (AdamW).
trait Decoupled {
    /// AdamW: true; Adam: false.
    const DECOUPLED: bool;
}

/// `C::DECOUPLED` of a config value.
fn decoupled<C: Decoupled>(_: &C) -> bool {
    C::DECOUPLED
}

/// Declares an Adam-family rule (the fields PyTorch's Adam and AdamW share, with their own
/// `weight_decay` default) and its engine side: one definition for both.
macro_rules! adam_config {
    ($(#[$doc:meta])* $name:ident = $torch:literal, optimizer: $opt:ident, weight_decay: $wd:expr, decoupled: $decoupled:expr, examples: $examples:tt) => {
        rule! {
            $(#[$doc])*
            pub struct $name = $torch {
                /// Learning rate.
                pub lr: f64,
                /// (β1, β2).
                pub betas: (f64, f64),
                /// Added to the denominator.
                pub eps: f64,
                /// Weight decay.
                pub weight_decay: f64,
                /// Use the running maximum of v (Reddi et al. 2018, "On the Convergence of Adam and Beyond").
                pub amsgrad: bool,
                /// Maximize the objective instead of minimizing.
                pub maximize: bool,
                /// Divide by `1 − β^t` (`false` is Apex's `FusedAdam(bias_correction=False)`,
                /// PyTorch has no such switch).
                pub bias_correction: bool,
            }
            default: {
                lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: $wd, amsgrad: false,
                maximize: false, bias_correction: true,
            },
            non_negative: [],
            states: ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
            examples: $examples,
            #[doc = concat!("Fused ", $torch, " (`torch.optim.", $torch, "`): see [`", stringify!($name), "`] for the rule.")]
            optimizer: $opt,
        }

        impl Decoupled for $name {
            const DECOUPLED: bool = $decoupled;
        }

        impl RuleConfig for $name {
            fn state_names(&self) -> [Option<&'static str>; 3] {
                [Some("exp_avg"), Some("exp_avg_sq"), self.amsgrad.then_some("max_exp_avg_sq")]
            }
            fn reference_step(&self, step: u32, t: TensorStep<'_>) {
                let (lr, betas, eps, wd) = (self.lr, self.betas, self.eps, self.weight_decay);
                let (maximize, bias_correction) = (self.maximize, self.bias_correction);
                reference::adam(t, step, lr, betas, eps, wd, $decoupled, maximize, bias_correction);
            }
        }

        impl Rule for $name {
            const BF16_STATES: bool = true;

            fn validate(&self) -> Result<()> {
                check_adam_family(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)
            }
            fn log_betas(&self) -> [f32; 2] {
                // ln β in f64, floored so β = 0 stays finite; 0 marks "no bias correction".
                let log = |b: f64| if self.bias_correction { b.ln().max(-100.0) as f32 } else { 0.0 };
                [log(self.betas.0), log(self.betas.1)]
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
    AdamConfig = "Adam", optimizer: Adam, weight_decay: 0.0, decoupled: false,
    examples: [
        { amsgrad: true, weight_decay: 0.01 },
        { lr: 1e-2 },
        { lr: 1e-2, weight_decay: 0.01, maximize: true },
        { lr: 1e-2, bias_correction: false },
        // 1 − β ≥ 0.5 takes torch.lerp's second formula.
        { lr: 1e-2, betas: (0.3, 0.6), amsgrad: true },
    ]
}

adam_config! {
    /// Config of [`AdamW`] (`torch.optim.AdamW`, Loshchilov & Hutter 2019, "Decoupled
    /// Weight Decay Regularization"); `Default` is PyTorch's (weight decay 1e-2).
    ///
    /// Adam's rule with the decay applied to the parameter, `p ← p·(1 − lr·weight_decay)`,
    /// before the step, instead of added to the gradient.
    AdamWConfig = "AdamW", optimizer: AdamW, weight_decay: 1e-2, decoupled: true,
    examples: [{}, { lr: 1e-2 }, { lr: 1e-2, amsgrad: true, weight_decay: 0.1 }]
}

rule_kernel! {
    /// `struct Adam` of `shaders/rules/adam.wgsl`: `torch.optim.Adam/AdamW`'s scalar
    /// constants.
    "adam" for [AdamConfig, AdamWConfig] as c, uniform AdamUniform = "Adam" {
        /// Learning rate.
        lr: f32 = c.lr as f32,
        /// `1 − β1`, in f64 then rounded.
        one_minus_beta1: f32 = (1.0 - c.betas.0) as f32,
        /// β2.
        beta2: f32 = c.betas.1 as f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32 = (1.0 - c.betas.1) as f32,
        /// Added to the denominator.
        eps: f32 = c.eps as f32,
        /// Weight decay (L2 penalty, or decoupled).
        weight_decay: f32 = c.weight_decay as f32,
        /// `1 − lr·weight_decay`, in f64 then rounded (decoupled decay).
        decay_factor: f32 = (1.0 - c.lr * c.weight_decay) as f32,
        /// 1: amsgrad.
        amsgrad: u32 = c.amsgrad.into(),
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// 1: AdamW's decoupled weight decay.
        decoupled_weight_decay: u32 = decoupled(c).into(),
        /// Uniforms are read in 16-byte rows.
        _pad: [u32; 2] = [0; 2],
    }
}
