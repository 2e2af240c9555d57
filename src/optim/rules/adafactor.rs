//! Adafactor: a second moment factored into row and column means for every matrix, and a
//! step size relative to the parameters' scale (PyTorch's rule).

use crate::error::Result;
use crate::kernels::abi::{GroupSchedule, SCHEDULE_ADAFACTOR};
use crate::optim::declare::FieldChecks;
use crate::optim::engine::Rule;
use crate::optim::{check, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, AdafactorStep, TensorStep};

rule! {
    /// Config of [`Adafactor`] (`torch.optim.Adafactor`, Shazeer & Stern 2018, "Adafactor:
    /// Adaptive Learning Rates with Sublinear Memory Cost"); `Default` is PyTorch's, with
    /// `eps.0` PyTorch's `None` for f32 parameters: f32's machine epsilon (for bf16
    /// parameters updated in place PyTorch's `None` is bf16's, 0.0078125: pass it).
    ///
    /// Per tensor of `n` elements, with `g` the clipped, unscaled gradient and `t` the
    /// step count; a tensor of two or more dimensions `[…, R, C]` is a batch of `R×C`
    /// matrices, each keeping a row vector `r` (`row_var`) and a column vector `c`
    /// (`col_var`); a scalar or vector keeps `v` (`variance`) whole:
    /// ```text
    /// g ← −g if maximize;  w = t^beta2_decay;  ρ = min(lr, 1/√t)
    /// α = max(eps.1, ‖p‖/√n)·ρ;  p ← p·(1 − lr·weight_decay)
    /// matrix: r ← lerp(r, ‖g_row‖²/C, w);  c ← lerp(c, ‖g_col‖²/R, w)
    ///         v̂_ij = r_i·c_j / max(mean(r), eps.0)
    /// vector: v ← lerp(v, g², w);  v̂ = v
    /// u = g·rsqrt(max(v̂, eps.0²));  p ← p − u·α / max(1, ‖u‖/(√n·d))
    /// ```
    /// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`);
    /// the states are PyTorch's `row_var`, `col_var` and `variance`. On a GPU a matrix's
    /// state is `R + C` floats (4096×4096: 0.002 bytes per parameter); the states are read
    /// (`States::get`, checkpoints) one value per element, a matrix's `row_var` and
    /// `col_var` broadcast over its columns and rows.
    pub struct AdafactorConfig = "Adafactor" {
        /// Learning rate: the cap of the relative step size `min(lr, 1/√t)`.
        pub lr: f64,
        /// `β2_t = 1 − t^beta2_decay` is the second moment's decay (≤ 0).
        pub beta2_decay: f64,
        /// `(eps1, eps2)`: the floor of the row means (squared: of the second moment), and
        /// of the parameters' RMS in the step size.
        pub eps: (f64, f64),
        /// The clipping threshold of the update's RMS (≥ 1).
        pub d: f64,
        /// Decoupled weight decay: `p ← p·(1 − lr·weight_decay)`.
        pub weight_decay: f64,
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: {
        lr: 1e-2, beta2_decay: -0.8, eps: (f32::EPSILON as f64, 1e-3), d: 1.0,
        weight_decay: 0.0, maximize: false,
    },
    non_negative: [lr, weight_decay],
    states: ["row_var", "col_var", "variance"],
    examples: [
        { lr: 5e-2, beta2_decay: -0.5, eps: (1e-3, 1e-3), d: 1.5, weight_decay: 0.01, maximize: true },
        {},
    ],
    /// Fused Adafactor (`torch.optim.Adafactor`): see [`AdafactorConfig`] for the rule. A
    /// step is a norm pass, the row and column sums of `g²` tile by tile, a fold of each
    /// row and column and of each matrix's row mean, a trust pass (`Σp²`, `Σu²`), one fold
    /// of every tensor's step size, and the update.
    optimizer: Adafactor,
}

impl From<&AdafactorConfig> for AdafactorStep {
    /// The reference's hyperparameters of a config (`reference::adafactor`).
    fn from(c: &AdafactorConfig) -> AdafactorStep {
        AdafactorStep {
            lr: c.lr,
            beta2_decay: c.beta2_decay,
            eps1: c.eps.0,
            eps2: c.eps.1,
            d: c.d,
            weight_decay: c.weight_decay,
            maximize: c.maximize,
        }
    }
}

impl RuleConfig for AdafactorConfig {
    const TENSORWISE: bool = true;

    fn bytes_per_element(&self) -> u64 {
        // The norm's read 4; the row and column sums read g, 4; the trust pass reads p and
        // g, 8; the update reads p and g and writes p, 12 (a matrix's states are O(R + C)).
        28
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let shape = t.shape.to_vec();
        reference::adafactor_broadcast(t, &shape, step, &self.into());
    }
}

impl Rule for AdafactorConfig {
    fn schedule(&self) -> GroupSchedule {
        // The finalize computes the step's weight t^beta2_decay once per group.
        GroupSchedule {
            kind: SCHEDULE_ADAFACTOR,
            exponent: self.beta2_decay as f32,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        self.check_fields()?;
        let b = self.beta2_decay;
        check(Self::NAME, "beta2_decay", b, b <= 0.0, "must be ≤ 0")?;
        for (name, eps) in [("eps[0]", self.eps.0), ("eps[1]", self.eps.1)] {
            let ok = eps >= 0.0 && eps.is_finite();
            check(Self::NAME, name, eps, ok, "must be finite and ≥ 0")?;
        }
        check(
            Self::NAME,
            "d",
            self.d,
            self.d >= 1.0 && self.d.is_finite(),
            "must be finite and ≥ 1",
        )
    }
}

rule_kernel! {
    /// `struct Adafactor` of `shaders/rules/adafactor_table.wgsl`: one row of the group
    /// table.
    "adafactor" with factored for [AdafactorConfig] as c, uniform AdafactorUniform = "Adafactor" {
        /// Learning rate (the relative step's cap).
        lr: f32 = c.lr as f32,
        /// The row means' floor.
        eps1: f32 = c.eps.0 as f32,
        /// `eps1²`, in f64 then rounded: the second moment's floor.
        eps1_sq: f32 = (c.eps.0 * c.eps.0) as f32,
        /// The parameters' RMS floor.
        eps2: f32 = c.eps.1 as f32,
        /// The update RMS's clipping threshold.
        d: f32 = c.d as f32,
        /// `1 − lr·weight_decay`, in f64 then rounded.
        decay: f32 = (1.0 - c.lr * c.weight_decay) as f32,
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// Padding to a 16-byte row (the weight `t^beta2_decay` is the finalize's:
        /// `Rule::schedule`).
        _pad0: u32 = 0,
    }
}
