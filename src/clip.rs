//! Clipping options: by global norm (Pascanu et al. 2013, "On the difficulty of training
//! recurrent neural networks"), by value, or both; and what to do with non-finite gradients.

use crate::error::{Error, Result};
use crate::norm::Norm;

/// How a step clips the gradient `g` before the update.
///
/// - `GlobalNorm`: `g ← g · min(1, max_norm / (‖g‖ + 1e-6))` (PyTorch `clip_grad_norm_`,
///   Optax `clip_by_global_norm` up to the `eps`).
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
        match self {
            Clip::None => {}
            Clip::GlobalNorm { max_norm, norm } => {
                check_max_norm(max_norm)?;
                norm.validate()?;
            }
            Clip::Value { clip_value } => check_clip_value(clip_value)?,
            Clip::NormThenValue {
                max_norm,
                norm,
                clip_value,
            } => {
                check_max_norm(max_norm)?;
                norm.validate()?;
                check_clip_value(clip_value)?;
            }
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

/// What a step does when a gradient holds NaN or ±Inf (or the total norm overflows).
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
}

impl Nonfinite {
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Nonfinite::Skip => 0,
            Nonfinite::Propagate => 1,
            Nonfinite::Error => 2,
        }
    }
}

pub(crate) fn check_max_norm(max_norm: f32) -> Result<()> {
    if max_norm.is_finite() && max_norm > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidMaxNorm(max_norm))
    }
}

pub(crate) fn check_clip_value(clip_value: f32) -> Result<()> {
    if clip_value.is_finite() && clip_value > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidClipValue(clip_value))
    }
}

use crate::arena::{Arena, ParamSet};
use crate::layout::Layout;
use crate::norm::{host_state, OpParams};
use crate::reference;
use crate::report::Report;

/// Whether a norm clip scales every gradient by the global coefficient or each tensor by its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Global,
    PerTensor,
}

impl ParamSet {
    /// Records PyTorch's `clip_grad_norm_`: the total norm `‖g‖`, then
    /// `g ← g · min(1, max_norm / (‖g‖ + 1e-6))` in place. The report holds the total norm
    /// (what PyTorch returns). Under `Nonfinite::Skip`/`Error` a non-finite gradient
    /// leaves every gradient untouched; `Propagate` scales anyway, as PyTorch does.
    pub fn encode_clip_grad_norm(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        max_norm: f32,
        norm: Norm,
        policy: Nonfinite,
    ) -> Result<Report> {
        self.encode_norm_clip(encoder, max_norm, norm, policy, Scope::Global)
    }

    /// PyTorch `clip_grad_norm_(grads, max_norm, norm_type)`, submitted: scales in place
    /// and returns the total norm in the report. Non-finite gradients propagate, as PyTorch.
    pub fn clip_grad_norm(&mut self, max_norm: f32, norm: Norm) -> Result<Report> {
        self.clip_grad_norm_with(max_norm, norm, Nonfinite::Propagate)
    }

    /// [`ParamSet::clip_grad_norm`] with an explicit non-finite policy.
    pub fn clip_grad_norm_with(
        &mut self,
        max_norm: f32,
        norm: Norm,
        policy: Nonfinite,
    ) -> Result<Report> {
        self.norm_clip(max_norm, norm, policy, Scope::Global)
    }

    /// Records per-tensor clipping: every tensor t is scaled by its own coefficient,
    /// `g_t ← g_t · min(1, max_norm / (‖g_t‖ + 1e-6))` (as `clip_grad_norm_` called on each
    /// tensor alone), from one norm pass. The report's `tensor_norms` are the norms before
    /// clipping; its `total_norm` is the global norm. Under `Skip`/`Error`, any non-finite
    /// gradient leaves every gradient untouched.
    pub fn encode_clip_grad_norm_per_tensor(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        max_norm: f32,
        norm: Norm,
        policy: Nonfinite,
    ) -> Result<Report> {
        self.encode_norm_clip(encoder, max_norm, norm, policy, Scope::PerTensor)
    }

    /// Per-tensor clipping (see [`ParamSet::encode_clip_grad_norm_per_tensor`]), submitted,
    /// with non-finite values propagating as PyTorch's.
    pub fn clip_grad_norm_per_tensor(&mut self, max_norm: f32, norm: Norm) -> Result<Report> {
        self.norm_clip(max_norm, norm, Nonfinite::Propagate, Scope::PerTensor)
    }

    fn encode_norm_clip(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        max_norm: f32,
        norm: Norm,
        policy: Nonfinite,
        scope: Scope,
    ) -> Result<Report> {
        let op = clip_norm_op(max_norm, norm, policy, &self.layout)?;
        self.encode_standalone(encoder, op, policy, |ws, pass, gpu, layout, op| {
            ws.encode_norm(pass, gpu, layout, op);
            match scope {
                Scope::Global => ws.encode_scale(pass, gpu, layout),
                Scope::PerTensor => ws.encode_scale_per_tensor(pass, gpu, layout),
            }
        })
    }

    /// A norm clip, submitted on a GPU or run by the CPU reference.
    fn norm_clip(
        &mut self,
        max_norm: f32,
        norm: Norm,
        policy: Nonfinite,
        scope: Scope,
    ) -> Result<Report> {
        clip_norm_op(max_norm, norm, policy, &self.layout)?;
        if self.ctx.gpu().is_some() {
            return self
                .submit_with(|set, enc| set.encode_norm_clip(enc, max_norm, norm, policy, scope));
        }
        let Arena::Cpu(grads) = &mut self.grads else {
            unreachable!("CPU contexts hold CPU arenas")
        };
        let (state, per_tensor) = host_state(&self.layout, grads, norm, Some(max_norm), policy);
        if !state.skipped {
            for (t, &tensor_norm) in self.layout.tensors.iter().zip(&per_tensor) {
                let coef = match scope {
                    Scope::Global => state.clip_coef,
                    Scope::PerTensor => reference::clip_coef(tensor_norm, max_norm),
                };
                let range = t.offset as usize..(t.offset + t.numel) as usize;
                grads[range].iter_mut().for_each(|g| *g *= coef);
            }
        }
        Ok(Report::host(state, per_tensor, policy))
    }

    /// Records PyTorch's `clip_grad_value_`: `g ← clamp(g, -clip_value, clip_value)` in
    /// place (NaN stays NaN).
    pub fn encode_clip_grad_value(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        clip_value: f32,
    ) -> Result<()> {
        let op = clip_value_op(clip_value, &self.layout)?;
        self.encode_standalone(
            encoder,
            op,
            Nonfinite::Propagate,
            |ws, pass, gpu, layout, _| ws.encode_clamp(pass, gpu, layout),
        )?;
        Ok(())
    }

    /// PyTorch `clip_grad_value_(grads, clip_value)`, submitted.
    pub fn clip_grad_value(&mut self, clip_value: f32) -> Result<()> {
        clip_value_op(clip_value, &self.layout)?;
        if self.ctx.gpu().is_some() {
            return self.submit_with(|set, enc| set.encode_clip_grad_value(enc, clip_value));
        }
        let Arena::Cpu(grads) = &mut self.grads else {
            unreachable!()
        };
        reference::clip_grad_value(&mut [grads.as_mut_slice()], clip_value);
        Ok(())
    }
}

fn clip_norm_op(max_norm: f32, norm: Norm, policy: Nonfinite, layout: &Layout) -> Result<OpParams> {
    check_max_norm(max_norm)?;
    let norm = norm.validate()?;
    Ok(OpParams {
        clip_norm: 1,
        max_norm,
        policy: policy.shader_code(),
        ..OpParams::norm(norm, layout)
    })
}

fn clip_value_op(clip_value: f32, layout: &Layout) -> Result<OpParams> {
    check_clip_value(clip_value)?;
    Ok(OpParams {
        has_norm: 0,
        clip_value,
        ..OpParams::norm(Norm::L2, layout)
    })
}
