//! Adamax: Adam with the infinity norm in place of the second moment (PyTorch's rule).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{lerp_shape, rule_shader, RuleShader};
use crate::optim::engine::Rule;
use crate::optim::{check_adam_family, optimizer, RuleConfig, TensorStep};
use crate::reference;

/// The Adamax update body (`shaders/rules/adamax.wgsl`); states in slot order: `exp_avg`,
/// `exp_inf`.
pub(super) static SHADER: RuleShader = rule_shader!("adamax", AdamaxUniform, states: 2);

shared_struct! {
    /// `struct Adamax` of `shaders/rules/adamax.wgsl`: one row of the group table.
    AdamaxUniform = "Adamax" {
        /// Learning rate.
        lr: f32,
        /// `1 − β1`, in f64 then rounded: the weight of `torch.lerp`.
        one_minus_beta1: f32,
        /// β2: the decay of the infinity norm.
        beta2: f32,
        /// Added to `|g|` before the maximum.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// 1: maximize.
        maximize: u32,
        /// Padding to a 16-byte row.
        _pad: [u32; 2],
    }
}

/// Config of [`Adamax`] (`torch.optim.Adamax`, Kingma & Ba 2015, §7.1); `Default` is
/// PyTorch's.
///
/// Per element, with `g` the clipped, unscaled gradient and `t` the step count:
/// ```text
/// g ← −g if maximize;  g ← g + weight_decay·p
/// m ← lerp(m, g, 1 − β1);   u ← max(β2·u, |g| + eps)
/// p ← p + (−lr / (1 − β1^t))·m / u
/// ```
/// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`);
/// the states are PyTorch's `exp_avg` and `exp_inf`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamaxConfig {
    /// Learning rate (default 2e-3).
    pub lr: f64,
    /// (β1, β2): the first moment's and the infinity norm's decay (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to `|g|` (default 1e-8).
    pub eps: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

optimizer! {
    /// Fused Adamax (`torch.optim.Adamax`): see [`AdamaxConfig`] for the rule.
    Adamax(AdamaxConfig)
}

impl RuleConfig for AdamaxConfig {
    const NAME: &'static str = "Adamax";

    fn examples() -> Vec<Self> {
        let d = AdamaxConfig::default();
        vec![
            d,
            AdamaxConfig {
                lr: 1e-2,
                betas: (0.8, 0.99),
                weight_decay: 0.01,
                maximize: true,
                ..d
            },
        ]
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [Some("exp_avg"), Some("exp_inf"), None]
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let [exp_avg, exp_inf, _] = t.states;
        reference::adamax(
            t.params,
            t.grads,
            exp_avg.expect("exp_avg is always kept"),
            exp_inf.expect("exp_inf is always kept"),
            step,
            self.lr,
            self.betas,
            self.eps,
            self.weight_decay,
            self.maximize,
        );
    }
}

impl Rule for AdamaxConfig {
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_adam_family(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)
    }

    fn log_betas(&self) -> [f32; 2] {
        // ln β1 for the bias correction 1 − β1^t, floored so β1 = 0 stays finite; the
        // infinity norm has none.
        [self.betas.0.ln().max(-100.0) as f32, 0.0]
    }

    fn uniform(&self) -> Vec<u8> {
        let u = AdamaxUniform {
            lr: self.lr as f32,
            one_minus_beta1: (1.0 - self.betas.0) as f32,
            beta2: self.betas.1 as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            maximize: u32::from(self.maximize),
            _pad: [0; 2],
        };
        bytemuck::bytes_of(&u).to_vec()
    }

    fn shape(&self) -> u32 {
        // The weight the kernel's lerp compares, as the group table holds it.
        lerp_shape((1.0 - self.betas.0) as f32)
    }
}

/// Registers the rule ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<AdamaxConfig>();
}
