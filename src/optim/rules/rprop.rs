//! Rprop: a step size per element, grown while the gradient keeps its sign and shrunk when
//! it flips (PyTorch's rule).

use crate::error::Result;
use crate::optim::declare::FieldChecks;
use crate::optim::engine::Rule;
use crate::optim::{check, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`Rprop`] (`torch.optim.Rprop`, Riedmiller & Braun 1993, "A Direct
    /// Adaptive Method for Faster Backpropagation Learning: The RPROP Algorithm");
    /// `Default` is PyTorch's.
    ///
    /// Per element, with `g` the clipped, unscaled gradient, `prev` the gradient the last
    /// step applied (0 at first) and `s` the element's step size (`lr` at first):
    /// ```text
    /// g ← −g if maximize
    /// f ← etaplus if g·prev > 0;  etaminus if g·prev < 0;  1 otherwise
    /// s ← clamp(s·f, step_size_min, step_size_max)
    /// g ← 0 where g·prev < 0
    /// p ← p − sign(g)·s;   prev ← g
    /// ```
    /// Same rule and order of operations as PyTorch's single-tensor loop (`foreach=False`);
    /// the states are PyTorch's `prev` and `step_size`. Rprop has no weight decay.
    pub struct RpropConfig = "Rprop" {
        /// The step size every element starts from.
        pub lr: f64,
        /// (etaminus, etaplus): the factors a step size shrinks and grows by,
        /// `0 < etaminus < 1 < etaplus`.
        pub etas: (f64, f64),
        /// (step_size_min, step_size_max): the bounds of every step size.
        pub step_sizes: (f64, f64),
        /// Maximize the objective instead of minimizing.
        pub maximize: bool,
    }
    default: { lr: 1e-2, etas: (0.5, 1.2), step_sizes: (1e-6, 50.0), maximize: false },
    non_negative: [lr],
    states: ["prev", "step_size"],
    examples: [{}, { lr: 5e-3, etas: (0.3, 1.5), step_sizes: (1e-4, 2e-2), maximize: true }],
    /// Fused Rprop (`torch.optim.Rprop`): see [`RpropConfig`] for the rule.
    optimizer: Rprop,
}

impl RuleConfig for RpropConfig {
    fn initial_state(&self) -> [f32; 3] {
        // PyTorch: prev = zeros, step_size = full_like(grad, lr).
        [0.0, self.lr as f32, 0.0]
    }

    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        reference::rprop(t, self.etas, self.step_sizes, self.maximize);
    }
}

impl Rule for RpropConfig {
    fn validate(&self) -> Result<()> {
        self.check_fields()?;
        let (minus, plus) = self.etas;
        let ok = 0.0 < minus && minus < 1.0 && 1.0 < plus && plus.is_finite();
        check(
            Self::NAME,
            "etas",
            minus,
            ok,
            "must be 0 < etaminus < 1 < etaplus (finite)",
        )?;
        let (low, high) = self.step_sizes;
        let ok = !low.is_nan() && !high.is_nan();
        check(
            Self::NAME,
            "step_sizes",
            low,
            ok,
            "must be numbers (min, max)",
        )
    }
}

rule_kernel! {
    /// `struct Rprop` of `shaders/rules/rprop.wgsl`: one row of the group table.
    "rprop" for [RpropConfig] as c, uniform RpropUniform = "Rprop" {
        /// The factor a step size shrinks by when the gradient flips its sign.
        etaminus: f32 = c.etas.0 as f32,
        /// The factor a step size grows by while the gradient keeps its sign.
        etaplus: f32 = c.etas.1 as f32,
        /// The smallest step size.
        step_size_min: f32 = c.step_sizes.0 as f32,
        /// The largest step size.
        step_size_max: f32 = c.step_sizes.1 as f32,
        /// 1: maximize.
        maximize: u32 = c.maximize.into(),
        /// Padding to a 16-byte row (single fields: a uniform's array strides 16 bytes).
        _pad0: u32 = 0,
        /// Padding.
        _pad1: u32 = 0,
        /// Padding.
        _pad2: u32 = 0,
    }
}
