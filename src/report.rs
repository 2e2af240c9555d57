//! Device-resident results. Recording an operation costs no host sync; reading its
//! report is the one place clipstep waits for the device.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::context::{f32s, Gpu};
use crate::error::{Error, Result};
use crate::reference::StepState;
use crate::Nonfinite;

/// `struct StepState` of `shaders/common.wgsl`, as bytes on the device.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RawStepState {
    pub total_norm: f32,
    pub clip_coef: f32,
    pub nonfinite: u32,
    pub skipped: u32,
    pub step: u32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub _pad: u32,
}

impl From<RawStepState> for StepState {
    fn from(r: RawStepState) -> Self {
        StepState {
            total_norm: r.total_norm,
            clip_coef: r.clip_coef,
            nonfinite: r.nonfinite != 0,
            skipped: r.skipped != 0,
            step: r.step,
            bias_correction1: r.bias_correction1,
            bias_correction2: r.bias_correction2,
        }
    }
}

impl From<StepState> for RawStepState {
    fn from(s: StepState) -> Self {
        RawStepState {
            total_norm: s.total_norm,
            clip_coef: s.clip_coef,
            nonfinite: u32::from(s.nonfinite),
            skipped: u32::from(s.skipped),
            step: s.step,
            bias_correction1: s.bias_correction1,
            bias_correction2: s.bias_correction2,
            _pad: 0,
        }
    }
}

/// The result of a norm, clip or optimizer step: the total norm, the clip coefficient,
/// the non-finite flag, whether the update was skipped, the step count, and the
/// per-tensor norms. On a GPU it stays on the device until read.
///
/// A report reads the values of the operation that made it; once a later operation on the
/// same parameter set (or optimizer) has been recorded, reading it is [`Error::StaleReport`].
/// For `encode_*` operations, submit the encoder before reading.
pub struct Report {
    source: Source,
    policy: Nonfinite,
}

/// The report of an optimizer step.
pub type StepReport = Report;

enum Source {
    Gpu {
        gpu: Arc<Gpu>,
        state: wgpu::Buffer,
        tensor_norms: wgpu::Buffer,
        num_tensors: usize,
        generation: u64,
        counter: Arc<AtomicU64>,
    },
    Host {
        state: StepState,
        tensor_norms: Vec<f32>,
    },
}

impl Report {
    pub(crate) fn gpu(
        gpu: Arc<Gpu>,
        state: wgpu::Buffer,
        tensor_norms: wgpu::Buffer,
        num_tensors: usize,
        counter: Arc<AtomicU64>,
        policy: Nonfinite,
    ) -> Report {
        let generation = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Report {
            source: Source::Gpu {
                gpu,
                state,
                tensor_norms,
                num_tensors,
                generation,
                counter,
            },
            policy,
        }
    }

    pub(crate) fn host(state: StepState, tensor_norms: Vec<f32>, policy: Nonfinite) -> Report {
        Report {
            source: Source::Host {
                state,
                tensor_norms,
            },
            policy,
        }
    }

    /// The step state. `total_norm` is NaN when the operation computed no norm (a step
    /// with no norm clip under `Nonfinite::Propagate`). Under `Nonfinite::Error`, a
    /// non-finite step reads as [`Error::NonFiniteGradients`].
    pub async fn read(&self) -> Result<StepState> {
        let state = match &self.source {
            Source::Gpu { gpu, state, .. } => {
                self.fresh()?;
                let bytes = gpu.read(&[(state, 0, 32)]).await?;
                StepState::from(bytemuck::pod_read_unaligned::<RawStepState>(&bytes))
            }
            Source::Host { state, .. } => *state,
        };
        if state.nonfinite && self.policy == Nonfinite::Error {
            return Err(Error::NonFiniteGradients {
                total_norm: state.total_norm,
            });
        }
        Ok(state)
    }

    /// [`Report::read`], blocking.
    pub fn read_blocking(&self) -> Result<StepState> {
        pollster::block_on(self.read())
    }

    /// The norm of each tensor (of `g / grad_scale`), in the set's order, from the same
    /// pass as the total. Empty when the operation computed no norm.
    pub async fn tensor_norms(&self) -> Result<Vec<f32>> {
        match &self.source {
            Source::Gpu {
                gpu,
                tensor_norms,
                num_tensors,
                ..
            } => {
                self.fresh()?;
                Ok(f32s(
                    &gpu.read(&[(tensor_norms, 0, *num_tensors as u64 * 4)])
                        .await?,
                ))
            }
            Source::Host { tensor_norms, .. } => Ok(tensor_norms.clone()),
        }
    }

    /// [`Report::tensor_norms`], blocking.
    pub fn tensor_norms_blocking(&self) -> Result<Vec<f32>> {
        pollster::block_on(self.tensor_norms())
    }

    fn fresh(&self) -> Result<()> {
        match &self.source {
            Source::Gpu {
                generation,
                counter,
                ..
            } if counter.load(Ordering::SeqCst) != *generation => Err(Error::StaleReport),
            _ => Ok(()),
        }
    }
}
