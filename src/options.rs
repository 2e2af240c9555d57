//! The options users name: which norm, how to clip, and what to do with non-finite
//! gradients. Each validates itself and knows its shader code.

use crate::error::{Error, Result};
use crate::kernels::abi::{
    NORM_INF, NORM_L1, NORM_L2, NORM_P, POLICY_ERROR, POLICY_PROPAGATE, POLICY_SKIP,
    POLICY_ZERO_NANS,
};

/// Which vector norm to compute, as `torch.linalg.vector_norm`'s `ord`.
///
/// `‖g‖_p = (Σ_i |g_i|^p)^(1/p)`; `‖g‖_∞ = max_i |g_i|`. The global norm of a set of
/// tensors is the norm of their concatenation (PyTorch's `clip_grad_norm_` `norm_type`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Norm {
    /// `Σ |g_i|`.
    L1,
    /// `sqrt(Σ g_i²)`, the default.
    #[default]
    L2,
    /// `max |g_i|`.
    Inf,
    /// `(Σ |g_i|^p)^(1/p)` for finite `p > 0`.
    P(f32),
}

impl Norm {
    /// Checks `p` is finite and > 0.
    pub fn validate(self) -> Result<Self> {
        match self {
            Norm::P(p) if !(p.is_finite() && p > 0.0) => Err(Error::InvalidNormOrder(p)),
            other => Ok(other),
        }
    }

    /// The order p as PyTorch's `norm_type`: 1, 2, `inf` or p.
    pub fn order(self) -> f32 {
        match self {
            Norm::L1 => 1.0,
            Norm::L2 => 2.0,
            Norm::Inf => f32::INFINITY,
            Norm::P(p) => p,
        }
    }

    /// The shader's `NORM_*` code and the order p (`P(1)` and `P(2)` take the L1/L2 paths).
    pub(crate) fn code(self) -> (u32, f32) {
        match self.order() {
            1.0 => (NORM_L1, 1.0),
            2.0 => (NORM_L2, 2.0),
            p if p == f32::INFINITY => (NORM_INF, p),
            p => (NORM_P, p),
        }
    }
}

/// How a step clips the gradient `g` before the update.
///
/// - `GlobalNorm`: `g ← g · min(1, max_norm / (‖g‖ + 1e-6))` (PyTorch `clip_grad_norm_`,
///   Optax `clip_by_global_norm` up to the `eps`; Pascanu et al. 2013, "On the difficulty
///   of training recurrent neural networks").
/// - `Value`: `g ← clamp(g, -clip_value, clip_value)` (PyTorch `clip_grad_value_`).
/// - `NormThenValue`: the norm clip, then the value clamp.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Clip {
    /// No clipping.
    #[default]
    None,
    /// Scale by `min(1, max_norm / (‖g‖ + 1e-6))`.
    GlobalNorm {
        /// Largest total norm allowed.
        max_norm: f32,
        /// Norm type.
        norm: Norm,
    },
    /// Clamp each element to `[-clip_value, clip_value]`.
    Value {
        /// Largest magnitude allowed.
        clip_value: f32,
    },
    /// Norm clip, then value clamp.
    NormThenValue {
        /// Largest total norm allowed.
        max_norm: f32,
        /// Norm type.
        norm: Norm,
        /// Largest magnitude allowed after the norm clip.
        clip_value: f32,
    },
}

impl Clip {
    /// Checks `max_norm > 0`, `clip_value > 0` (both finite) and the norm order.
    pub fn validate(self) -> Result<Self> {
        if let Some((max_norm, norm)) = self.norm_clip() {
            check_max_norm(max_norm)?;
            norm.validate()?;
        }
        if let Some(clip_value) = self.value_clip() {
            check_clip_value(clip_value)?;
        }
        Ok(self)
    }

    /// `(max_norm, norm)` when this clip scales by the global norm.
    pub fn norm_clip(self) -> Option<(f32, Norm)> {
        match self {
            Clip::GlobalNorm { max_norm, norm } | Clip::NormThenValue { max_norm, norm, .. } => {
                Some((max_norm, norm))
            }
            _ => None,
        }
    }

    /// The clamp bound when this clip clamps values.
    pub fn value_clip(self) -> Option<f32> {
        match self {
            Clip::Value { clip_value } | Clip::NormThenValue { clip_value, .. } => Some(clip_value),
            _ => None,
        }
    }
}

/// What an operation does when a gradient holds NaN or ±Inf (or the total norm overflows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Nonfinite {
    /// Skip the update on the device: parameters, states and the step count stay
    /// bit-identical (as `torch.amp.GradScaler` does). The default for fused steps.
    #[default]
    Skip,
    /// Apply the update anyway, propagating NaN/Inf into the parameters (PyTorch's plain
    /// `clip_grad_norm_` + `optimizer.step()`).
    Propagate,
    /// Skip as `Skip`, and return [`Error::NonFiniteGradients`] when the report is read
    /// (PyTorch's `error_if_nonfinite=True`).
    Error,
    /// NaN gradients count as 0 — in the norm, the clip and the update, and a standalone
    /// clip writes them as 0 (Optax's `zero_nans`) — while ±Inf skips the step as `Skip`
    /// does (Optax would let an infinity through). The report's `nonfinite` still says
    /// whether any NaN or Inf was seen.
    ZeroNans,
}

impl Nonfinite {
    /// The shader's `POLICY_*` code.
    pub(crate) fn code(self) -> u32 {
        match self {
            Nonfinite::Skip => POLICY_SKIP,
            Nonfinite::Propagate => POLICY_PROPAGATE,
            Nonfinite::Error => POLICY_ERROR,
            Nonfinite::ZeroNans => POLICY_ZERO_NANS,
        }
    }
}

/// A block-RMS `threshold` must be finite and > 0.
pub(crate) fn check_block_rms(threshold: f32) -> Result<()> {
    if threshold.is_finite() && threshold > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidBlockRms(threshold))
    }
}

/// `max_norm` must be finite and > 0.
pub(crate) fn check_max_norm(max_norm: f32) -> Result<()> {
    if max_norm.is_finite() && max_norm > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidMaxNorm(max_norm))
    }
}

/// `clip_value` must be finite and > 0.
pub(crate) fn check_clip_value(clip_value: f32) -> Result<()> {
    if clip_value.is_finite() && clip_value > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidClipValue(clip_value))
    }
}
