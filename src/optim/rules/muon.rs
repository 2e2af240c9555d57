//! Muon: momentum orthogonalized by a Newton–Schulz iteration, per matrix (PyTorch's rule).

use crate::error::Result;
use crate::optim::declare::FieldChecks;
use crate::optim::engine::Rule;
use crate::optim::{rule, rule_kernel, RuleConfig};
use crate::reference::{self, MuonLrAdjust, NewtonSchulz, TensorStep};

rule! {
    /// Config of [`Muon`] (`torch.optim.Muon`; Jordan et al. 2024, "Muon: An optimizer for
    /// hidden layers in neural networks"); `Default` is PyTorch's.
    ///
    /// Per matrix `p` of `rows × cols` (Muon steps 2-D tensors only: give biases, norms and
    /// embeddings to AdamW, in a set of their own), with `g` the clipped, unscaled gradient:
    /// ```text
    /// B ← lerp(B, g, 1 − momentum)
    /// U = lerp(g, B, momentum) if nesterov, else B
    /// X = U (Uᵀ when rows > cols);  X ← X / max(‖X‖_F, eps)
    /// ns_steps times:  A = X·Xᵀ;  X ← a·X + (b·A + c·A·A)·X        (a, b, c) = ns_coefficients
    /// O = X (transposed back);  p ← p·(1 − lr·weight_decay) − adjusted_lr·O
    /// ```
    /// `adjusted_lr` per [`MuonLrAdjust`]: `lr·sqrt(max(1, rows/cols))` (`"original"`),
    /// `0.2·lr·sqrt(max(rows, cols))` (`"match_rms_adamw"`) or `lr·sqrt(rows/cols)`.
    /// Same rule and order of operations as PyTorch's loop; with `ns_bf16` (PyTorch's way)
    /// the iteration's values are rounded to bf16 where PyTorch's bf16 copy holds them
    /// (the products accumulate in f32), `false` runs it in f32. The state is PyTorch's
    /// `momentum_buffer`. On a GPU every matrix of the set is orthogonalized together: one
    /// normalization dispatch and three batched matrix products per iteration.
    pub struct MuonConfig = "Muon" {
        /// Learning rate.
        pub lr: f64,
        /// Decoupled weight decay: `p ← p·(1 − lr·weight_decay)`.
        pub weight_decay: f64,
        /// Momentum factor `μ`.
        pub momentum: f64,
        /// Nesterov momentum: orthogonalize `lerp(g, B, μ)` instead of `B`.
        pub nesterov: bool,
        /// `(a, b, c)` of the quintic iteration.
        pub ns_coefficients: (f64, f64, f64),
        /// The floor of the Frobenius norm the input is divided by.
        pub eps: f64,
        /// Newton–Schulz iterations (< 100).
        pub ns_steps: u32,
        /// PyTorch's `adjust_lr_fn`.
        pub adjust_lr_fn: MuonLrAdjust,
        /// Round the iteration to bf16 as PyTorch does (`true`), or run it in f32.
        pub ns_bf16: bool,
    }
    default: {
        lr: 1e-3, weight_decay: 0.1, momentum: 0.95, nesterov: true,
        ns_coefficients: (3.4445, -4.7750, 2.0315), eps: 1e-7, ns_steps: 5,
        adjust_lr_fn: MuonLrAdjust::Original, ns_bf16: true,
    },
    non_negative: [lr, weight_decay, momentum],
    states: ["momentum_buffer"],
    examples: [
        { lr: 0.02, weight_decay: 0.01, adjust_lr_fn: MuonLrAdjust::MatchRmsAdamW, ns_bf16: false },
        { lr: 0.05, momentum: 0.9, nesterov: false, ns_steps: 3 },
        { adjust_lr_fn: MuonLrAdjust::SpectralUnclamped, ns_coefficients: (2.0, -1.5, 0.5), eps: 1e-5, ns_bf16: false },
    ],
    /// Fused Muon (`torch.optim.Muon`): see [`MuonConfig`] for the rule. A step is a norm
    /// pass, a trust pass (the momentum, and each matrix's Newton–Schulz input), one fold
    /// (each tensor's adjusted learning rate), the iteration of every matrix at once
    /// (`1 + 3·ns_steps` dispatches, [`crate::linalg`]) and the update.
    optimizer: Muon,
}

impl MuonConfig {
    /// The Newton–Schulz settings of this config.
    pub fn newton_schulz(&self) -> NewtonSchulz {
        let (a, b, c) = self.ns_coefficients;
        NewtonSchulz {
            coefficients: (a as f32, b as f32, c as f32),
            steps: self.ns_steps,
            eps: self.eps as f32,
            bf16: self.ns_bf16,
        }
    }
}

impl RuleConfig for MuonConfig {
    const TENSORWISE: bool = true;
    const MATRICES: bool = true;

    fn bytes_per_element(&self) -> u64 {
        // The norm's read 4; the trust pass reads g and B and writes B and X, 16; the
        // update reads p and O and writes p, 12 (the iteration's traffic is the matrix
        // products', counted in flops: `clipstep bench`).
        32
    }

    fn reference_step(&self, _step: u32, t: TensorStep<'_>) {
        let ns = self.newton_schulz();
        let (lr, wd, mu) = (self.lr, self.weight_decay, self.momentum);
        reference::muon(t, lr, wd, mu, self.nesterov, &ns, self.adjust_lr_fn);
    }
}

impl Rule for MuonConfig {
    const TORCH_STEP: bool = false;

    fn validate(&self) -> Result<()> {
        self.check_fields()?;
        crate::linalg::validate(&self.newton_schulz())
    }

    fn orthogonalization(&self) -> Option<(NewtonSchulz, MuonLrAdjust)> {
        Some((self.newton_schulz(), self.adjust_lr_fn))
    }
}

rule_kernel! {
    /// `struct Muon` of `shaders/rules/muon.wgsl`: one row of the group table.
    "muon" with matrices for [MuonConfig] as c, uniform MuonUniform = "Muon" {
        /// Learning rate (the fold scales it per tensor).
        lr: f32 = c.lr as f32,
        /// `1 − lr·weight_decay`, in f64 then rounded.
        decay: f32 = (1.0 - c.lr * c.weight_decay) as f32,
        /// `μ`.
        momentum: f32 = c.momentum as f32,
        /// `1 − μ`, in f64 then rounded.
        one_minus_momentum: f32 = (1.0 - c.momentum) as f32,
        /// 1: Nesterov.
        nesterov: u32 = c.nesterov.into(),
        /// Padding to a 16-byte row.
        _pad0: u32 = 0,
        /// Padding.
        _pad1: u32 = 0,
        /// Padding.
        _pad2: u32 = 0,
    }
}
