//! LAMB: Adam moments with decoupled weight decay, scaled per tensor by a trust ratio
//! (Optax's rule).

use crate::error::Result;
use crate::optim::declare::FieldChecks;
use crate::optim::engine::Rule;
use crate::optim::{check, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
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
    pub struct LambConfig = "LAMB" {
        /// Learning rate.
        pub lr: f64,
        /// Decoupled weight decay, before the trust ratio.
        pub weight_decay: f64,
        /// `(β1, β2)`: Optax's `b1`, `b2`.
        pub betas: (f64, f64),
        /// Added to the denominator.
        pub eps: f64,
        /// Added inside the square root.
        pub eps_root: f64,
    }
    default: { lr: 1e-3, weight_decay: 0.0, betas: (0.9, 0.999), eps: 1e-6, eps_root: 0.0 },
    non_negative: [lr, eps, eps_root, weight_decay],
    states: ["exp_avg", "exp_avg_sq"],
    examples: [
        { lr: 1e-2, betas: (0.8, 0.99), weight_decay: 0.01, eps_root: 1e-8 },
        {},
    ],
    /// Fused LAMB (`optax.lamb`): see [`LambConfig`] for the rule. A step is a norm pass, a
    /// trust pass (the moments, and per-chunk `Σp²`, `Σu²`), one fold of every tensor's
    /// ratio, and the update.
    optimizer: Lamb,
}

impl RuleConfig for LambConfig {
    const TENSORWISE: bool = true;

    fn bytes_per_element(&self) -> u64 {
        // The norm's read 4; the trust pass reads p, g, m, v and writes m, v, 24; the
        // update reads p, m, v and writes p, 16.
        44
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let (lr, betas, eps, eps_root) = (self.lr, self.betas, self.eps, self.eps_root);
        reference::lamb(t, step, lr, betas, eps, eps_root, self.weight_decay);
    }
}

impl Rule for LambConfig {
    fn validate(&self) -> Result<()> {
        self.check_fields()?;
        for (name, beta) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            let ok = (0.0..1.0).contains(&beta);
            check(Self::NAME, name, beta, ok, "must be in [0, 1)")?;
        }
        Ok(())
    }

    fn log_betas(&self) -> [f32; 2] {
        // ln β in f64, floored so β = 0 stays finite (0 would mean "no bias correction").
        let log = |b: f64| b.ln().max(-100.0) as f32;
        [log(self.betas.0), log(self.betas.1)]
    }
}

rule_kernel! {
    /// `struct Lamb` of `shaders/rules/lamb_table.wgsl`.
    "lamb" with trust for [LambConfig] as c, uniform LambUniform = "Lamb" {
        /// `−lr`.
        neg_lr: f32 = -c.lr as f32,
        /// Decoupled weight decay, added before the trust ratio.
        weight_decay: f32 = c.weight_decay as f32,
        /// Added to the denominator.
        eps: f32 = c.eps as f32,
        /// Added inside the square root.
        eps_root: f32 = c.eps_root as f32,
        /// β1.
        beta1: f32 = c.betas.0 as f32,
        /// `1 − β1`, in f64 then rounded.
        one_minus_beta1: f32 = (1.0 - c.betas.0) as f32,
        /// β2.
        beta2: f32 = c.betas.1 as f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32 = (1.0 - c.betas.1) as f32,
    }
}
