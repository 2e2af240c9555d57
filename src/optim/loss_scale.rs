//! The dynamic loss scale, kept on the device: PyTorch's `GradScaler` rule, with
//! Megatron's optional hysteresis, run by the step's finalize pass (no host readback).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A dynamic loss scaler's settings (`torch.amp.GradScaler`'s, defaults included, plus
/// Megatron / DeepSpeed hysteresis).
///
/// With a scaler set ([`crate::LossScaling::set_scaler`]), each step unscales the
/// gradients by the scale held in the optimizer's device state (`g / scale`, fused in the
/// update; the norm too), skips the update when a gradient is NaN/±Inf or the norm
/// overflows (`found_inf`), and then updates the scale on the device
/// ([`crate::reference::update_scale`]): on `found_inf` the growth tracker resets and,
/// once `hysteresis` consecutive overflows have been seen, `scale ← scale ·
/// backoff_factor`; after `growth_interval` steps without overflow, `scale ← scale ·
/// growth_factor` (if finite). The training loop multiplies its loss by the current
/// scale, read on the device from [`crate::LossScaling::binding`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The first scale. Default 65536 (2^16).
    pub init_scale: f32,
    /// Growth factor, > 1. Default 2.
    pub growth_factor: f32,
    /// Backoff factor, in (0, 1). Default 0.5.
    pub backoff_factor: f32,
    /// Steps without overflow before the scale grows, ≥ 1. Default 2000.
    pub growth_interval: u32,
    /// Consecutive overflows before the scale backs off, ≥ 1 (1: every overflow, as
    /// PyTorch). Default 1.
    pub hysteresis: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            hysteresis: 1,
        }
    }
}

impl LossScaler {
    /// Checks each setting's range (PyTorch's checks, and a finite `1 / init_scale`).
    pub fn validate(&self) -> Result<()> {
        check_scale(self.init_scale)?;
        let bad = |what: String| Err(Error::InvalidLossScaler(what));
        if !(self.growth_factor > 1.0 && self.growth_factor.is_finite()) {
            return bad(format!(
                "growth_factor must be finite and > 1; got {}",
                self.growth_factor
            ));
        }
        if !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return bad(format!(
                "backoff_factor must be in (0, 1); got {}",
                self.backoff_factor
            ));
        }
        if self.growth_interval == 0 || self.hysteresis == 0 {
            return bad(format!(
                "growth_interval and hysteresis must be ≥ 1; got {} and {}",
                self.growth_interval, self.hysteresis
            ));
        }
        Ok(())
    }
}

/// A loss scale must be finite and > 0 with a finite reciprocal.
pub(crate) fn check_scale(scale: f32) -> Result<()> {
    if scale.is_finite() && scale > 0.0 && (1.0 / scale).is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidLossScaler(format!(
            "a scale must be finite and > 0 with a finite reciprocal; got {scale}"
        )))
    }
}
