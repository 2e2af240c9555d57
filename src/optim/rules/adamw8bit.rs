//! 8-bit AdamW: AdamW whose moments are kept as 8-bit codes with one absmax per block of
//! 256 elements (bitsandbytes' `AdamW8bit`): about a quarter of AdamW's state memory.

use crate::error::Result;
use crate::optim::engine::Rule;
use crate::optim::{check_adam_family, rule, rule_kernel, RuleConfig, RuleDeclaration};
use crate::reference::{self, TensorStep};

rule! {
    /// Config of [`AdamW8bit`] (`bitsandbytes.optim.AdamW8bit`, Dettmers et al. 2022,
    /// "8-bit Optimizers via Block-wise Quantization"); `Default` is bitsandbytes'.
    ///
    /// Per element, with `g` the clipped, unscaled gradient, `t` the step count,
    /// `c1 = 1 − β1^t`, `c2 = sqrt(1 − β2^t)`:
    /// ```text
    /// m ← m·β1 + (1 − β1)·g;   v ← v·β2 + (1 − β2)·g·g       (m, v dequantized)
    /// p ← p·(1 − lr·weight_decay)                            (when weight_decay > 0)
    /// p ← p + (−lr / c1)·(m / (sqrt(v) / c2 + eps))
    /// m, v ← requantized: per block of 256 elements of a tensor, A = max |x|, and each
    ///        element the nearest code of x / A in bitsandbytes' dynamic map (signed for m,
    ///        unsigned for v), kept as that code and A
    /// ```
    /// A tensor of fewer than `min_8bit_size` elements keeps f32 moments and takes
    /// bitsandbytes' 32-bit step, `p ← p + (−lr·c2 / c1)·(m / (sqrt(v) + eps·c2))`.
    /// bitsandbytes' CPU steps in their order; its portable quantizer's rounding (the
    /// midpoints between codes, a midpoint rounding down; a whole block scaled by the
    /// reciprocal of its absmax, a tensor's last, partial block divided by it). The states
    /// read back (`States::get`, checkpoints) are the dequantized moments under PyTorch's
    /// names. 8-bit states need a GPU for their memory saving: the CPU backend holds the
    /// dequantized values in f32.
    pub struct AdamW8bitConfig = "AdamW8bit" {
        /// Learning rate.
        pub lr: f64,
        /// (β1, β2): the moments' decays.
        pub betas: (f64, f64),
        /// Added to the denominator.
        pub eps: f64,
        /// Decoupled weight decay.
        pub weight_decay: f64,
        /// Tensors with fewer elements keep f32 moments (bitsandbytes' `min_8bit_size`).
        pub min_8bit_size: u64,
    }
    default: { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 1e-2, min_8bit_size: 4096 },
    non_negative: [],
    states: ["exp_avg", "exp_avg_sq"],
    examples: [
        { lr: 1e-2, betas: (0.8, 0.99), weight_decay: 0.1, min_8bit_size: 256 },
        { weight_decay: 0.0 },
    ],
    /// Fused 8-bit AdamW (`bitsandbytes.optim.AdamW8bit`): see [`AdamW8bitConfig`] for the
    /// rule. Its moments take 2 bytes per parameter plus 8 bytes per 256-element block on
    /// the device (`States::bytes`).
    optimizer: AdamW8bit,
}

impl RuleConfig for AdamW8bitConfig {
    const QUANTIZED: bool = true;

    fn bytes_per_element(&self) -> u64 {
        // The norm's read 4, the update's gradient 4, the parameter read and written 8,
        // two 8-bit moments read and written 4 (their absmax, 16 bytes per 256 elements,
        // is left out).
        20
    }

    fn reference_step(&self, step: u32, t: TensorStep<'_>) {
        let (lr, betas, eps, wd) = (self.lr, self.betas, self.eps, self.weight_decay);
        reference::adamw8bit(t, step, lr, betas, eps, wd, self.min_8bit_size);
    }
}

impl Rule for AdamW8bitConfig {
    const TORCH_STEP: bool = true;

    fn validate(&self) -> Result<()> {
        check_adam_family(Self::NAME, self.lr, self.betas, self.eps, self.weight_decay)
    }

    fn log_betas(&self) -> [f32; 2] {
        let log = |b: f64| b.ln().max(-100.0) as f32;
        [log(self.betas.0), log(self.betas.1)]
    }

    fn quantizes(&self, numel: u64) -> bool {
        numel >= self.min_8bit_size
    }
}

rule_kernel! {
    /// `struct AdamW8bit` of `shaders/rules/adamw8bit.wgsl`: one row of the group table.
    "adamw8bit" with q8 for [AdamW8bitConfig] as c, uniform AdamW8bitUniform = "AdamW8bit" {
        /// Learning rate.
        lr: f32 = c.lr as f32,
        /// β1.
        beta1: f32 = c.betas.0 as f32,
        /// `1 − β1`, in f64 then rounded.
        one_minus_beta1: f32 = (1.0 - c.betas.0) as f32,
        /// β2.
        beta2: f32 = c.betas.1 as f32,
        /// `1 − β2`, in f64 then rounded.
        one_minus_beta2: f32 = (1.0 - c.betas.1) as f32,
        /// Added to the denominator.
        eps: f32 = c.eps as f32,
        /// Decoupled weight decay (applied when > 0).
        weight_decay: f32 = c.weight_decay as f32,
        /// `1 − lr·weight_decay`, in f64 then rounded.
        decay_factor: f32 = (1.0 - c.lr * c.weight_decay) as f32,
    }
}
