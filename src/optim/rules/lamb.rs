//! LAMB: Adam moments with decoupled weight decay, scaled per tensor by a trust ratio
//! (Optax's rule).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kernels::abi::shared_struct;
use crate::kernels::shaders::{rule_shader, RuleShader};
use crate::optim::engine::Rule;
use crate::optim::{check, check_non_negative, optimizer};
use crate::optim::{RuleConfig, TensorStep};
use crate::reference;

/// The LAMB shaders: its group table, trust body and update body; states
/// in slot order: `exp_avg`, `exp_avg_sq`.
pub(super) static SHADER: RuleShader = rule_shader!("lamb", LambUniform, states: 2, trust);

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

/// Config of [`Lamb`] (You et al. 2019, "Large Batch Optimization for Deep Learning";
/// `optax.lamb`); `Default` is Optax's, with a learning rate of 1e-3 (Optax has none).
///
/// Per tensor, with `g` the clipped, unscaled gradient and `step` the step count:
/// ```text
/// m ← (1 − β1)·g + β1·m;  v ← (1 − β2)·g² + β2·v
/// u ← (m / bc1) / (sqrt(v / bc2 + eps_root) + eps) + weight_decay·p      bc_k = 1 − β_k^step
/// p ← p − lr·u·‖p‖ / ‖u‖                                                 (1 when a norm is 0)
/// ```
/// Same rule and order of operations as `optax.lamb` (Apex's `FusedLAMB` differs: it
/// adds grad averaging and a global-norm clip of its own). The bias corrections are
/// computed on the device as `−expm1(step·ln β)` (Optax: `1 − β^step` in f32).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LambConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// `(β1, β2)` (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-6).
    pub eps: f64,
    /// Added inside the square root (default 0).
    pub eps_root: f64,
    /// Decoupled weight decay, before the trust ratio (default 0).
    pub weight_decay: f64,
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-6,
            eps_root: 0.0,
            weight_decay: 0.0,
        }
    }
}

optimizer! {
    /// Fused LAMB (`optax.lamb`): see [`LambConfig`] for the rule. A step is a norm pass, a
    /// trust pass (the moments, and per-chunk `Σp²`, `Σu²`), one fold of every tensor's
    /// ratio, and the update.
    Lamb(LambConfig)
}

impl RuleConfig for LambConfig {
    const NAME: &'static str = "LAMB";
    const TENSORWISE: bool = true;

    fn bytes_per_element(&self) -> u64 {
        // The norm's read 4; the trust pass reads p, g, m, v and writes m, v, 24; the
        // update reads p, m, v and writes p, 16.
        44
    }

    fn examples() -> Vec<Self> {
        let d = LambConfig::default();
        vec![
            LambConfig {
                lr: 1e-2,
                betas: (0.8, 0.99),
                weight_decay: 0.01,
                eps_root: 1e-8,
                ..d
            },
            d,
        ]
    }

    fn state_names(&self) -> [Option<&'static str>; 3] {
        [Some("exp_avg"), Some("exp_avg_sq"), None]
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let [m, v, _] = t.states;
        reference::lamb(
            t.params,
            t.grads,
            m.expect("exp_avg is always kept"),
            v.expect("exp_avg_sq is always kept"),
            step,
            self.lr,
            self.betas,
            self.eps,
            self.eps_root,
            self.weight_decay,
        );
    }
}

impl Rule for LambConfig {
    const SHADER: &'static RuleShader = &SHADER;

    fn validate(&self) -> Result<()> {
        check_non_negative(Self::NAME, "lr", self.lr)?;
        check_non_negative(Self::NAME, "eps", self.eps)?;
        check_non_negative(Self::NAME, "eps_root", self.eps_root)?;
        check_non_negative(Self::NAME, "weight_decay", self.weight_decay)?;
        for (name, beta) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            check(
                Self::NAME,
                name,
                beta,
                (0.0..1.0).contains(&beta),
                "must be in [0, 1)",
            )?;
        }
        Ok(())
    }

    fn log_betas(&self) -> [f32; 2] {
        // ln β in f64, floored so β = 0 stays finite (0 would mean "no bias correction").
        let log = |b: f64| b.ln().max(-100.0) as f32;
        [log(self.betas.0), log(self.betas.1)]
    }

    fn uniform(&self) -> Vec<u8> {
        let (b1, b2) = self.betas;
        let u = LambUniform {
            neg_lr: -self.lr as f32,
            beta1: b1 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            eps: self.eps as f32,
            eps_root: self.eps_root as f32,
            weight_decay: self.weight_decay as f32,
        };
        bytemuck::bytes_of(&u).to_vec()
    }
}

/// Registers the rule ([`crate::for_each_rule`]).
pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
    visitor.visit::<LambConfig>();
}
