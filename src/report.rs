//! Device-resident results. Recording an operation costs no host sync; reading its
//! report is the one place clipstep waits for the device.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::device::context::Gpu;
use crate::device::gpu::f32s;
use crate::error::{Error, Result};
use crate::kernels::abi::{DeviceStepState, SOURCE_COMPUTED, SOURCE_NONE};
use crate::kernels::norm::{NormWorkspace, RAN_AT};
use crate::options::Nonfinite;

/// What an operation found: the values of the step state, read from the device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepState {
    /// Total norm of the unscaled gradient `g / grad_scale`; NaN when the operation
    /// computed no norm (see [`Report::has_norm`]).
    pub total_norm: f32,
    /// `min(1, max_norm / (total_norm + 1e-6))`, or 1 without a norm clip.
    pub clip_coef: f32,
    /// Some gradient was NaN/±Inf, or the total norm overflowed.
    pub nonfinite: bool,
    /// The update (or clip) was skipped: non-finite under `Nonfinite::Skip` or `Error`.
    pub skipped: bool,
    /// Optimizer steps taken, skipped steps excluded (0 for standalone operations).
    pub step: u32,
    /// The loss scale after the step (under a [`crate::LossScaler`]: grown or backed off
    /// by this step; else 1): the scale of the next backward pass.
    pub loss_scale: f32,
}

impl From<DeviceStepState> for StepState {
    fn from(r: DeviceStepState) -> Self {
        StepState {
            total_norm: r.total_norm,
            clip_coef: r.clip_coef,
            nonfinite: r.nonfinite != 0,
            skipped: r.skipped != 0,
            step: r.step,
            loss_scale: r.loss_scale,
        }
    }
}

/// The result of a norm, clip or optimizer step: the total norm, the clip coefficient,
/// the non-finite flag, whether the update was skipped, the step count, and the
/// per-tensor norms. On a GPU it stays on the device until read.
///
/// A report reads the values of the operation that made it; once a later operation on the
/// same parameter set (or optimizer) has been recorded, reading it is [`Error::StaleReport`].
/// For `encode_*` operations, submit the encoder before reading: a report read before its
/// operation was submitted is [`Error::UnsubmittedReport`], never the previous values (each
/// recording writes its number in stream; the read checks it in the same readback).
pub struct Report {
    source: Source,
    policy: Nonfinite,
    /// `SOURCE_*`: whether the operation computed a norm, was given one, or had none.
    norm_source: u32,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.source {
            Source::Gpu { generation, .. } => format!("GPU, recording {generation}"),
            Source::Host { .. } => "CPU reference".to_string(),
        };
        f.debug_struct("Report")
            .field("backend", &backend)
            .field("policy", &self.policy)
            .field("has_norm", &self.has_norm())
            .finish()
    }
}

enum Source {
    Gpu {
        gpu: Arc<Gpu>,
        state: wgpu::Buffer,
        tensor_norms: wgpu::Buffer,
        ran: wgpu::Buffer,
        num_tensors: usize,
        generation: u64,
        counter: Arc<AtomicU64>,
    },
    Host {
        state: DeviceStepState,
        tensor_norms: Vec<f32>,
    },
}

impl Report {
    /// A report on `ws`'s step state, for the recording about to be made; earlier reports
    /// become stale when it is [committed](Report::commit), once the recording succeeded.
    pub(crate) fn gpu(
        gpu: &Arc<Gpu>, ws: &NormWorkspace, num_tensors: usize, policy: Nonfinite, norm_source: u32,
    ) -> Report {
        let generation = ws.generation.load(Ordering::SeqCst) + 1;
        Report {
            source: Source::Gpu {
                gpu: gpu.clone(),
                state: ws.state.clone(),
                tensor_norms: ws.tensor_norms.clone(),
                ran: ws.ran().clone(),
                num_tensors,
                generation,
                counter: ws.generation.clone(),
            },
            policy,
            norm_source,
        }
    }

    /// A report of the CPU backend; `tensor_norms` is empty unless the norm was computed.
    pub(crate) fn host(
        state: DeviceStepState, tensor_norms: Vec<f32>, policy: Nonfinite, norm_source: u32,
    ) -> Report {
        Report {
            source: Source::Host {
                state,
                tensor_norms,
            },
            policy,
            norm_source,
        }
    }

    /// Makes this report the fresh one of its workspace: called once its operation was
    /// recorded (or submitted) without error, so a failed call leaves earlier reports
    /// readable.
    pub(crate) fn commit(self) -> Report {
        if let Source::Gpu {
            generation,
            counter,
            ..
        } = &self.source
        {
            counter.store(*generation, Ordering::SeqCst);
        }
        self
    }

    /// Whether the operation computed (or was given) a total norm. A fused step with no
    /// norm clip under `Nonfinite::Propagate` computes none, and neither does a value clip.
    pub fn has_norm(&self) -> bool {
        self.norm_source != SOURCE_NONE
    }

    /// The step state. `total_norm` is NaN when the operation computed no norm. Under
    /// `Nonfinite::Error`, a non-finite step reads as [`Error::NonFiniteGradients`].
    pub async fn read(&self) -> Result<StepState> {
        let state = match &self.source {
            Source::Gpu { state, .. } => {
                let size = std::mem::size_of::<DeviceStepState>() as u64;
                let bytes = self.read_ran(state, size).await?;
                bytemuck::pod_read_unaligned::<DeviceStepState>(&bytes)
            }
            Source::Host { state, .. } => *state,
        };
        let state = StepState::from(state);
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
    /// pass as the total. Empty when the operation computed no per-tensor norms (no norm,
    /// or a norm given by the caller), on every backend.
    pub async fn tensor_norms(&self) -> Result<Vec<f32>> {
        match &self.source {
            Source::Gpu {
                tensor_norms,
                num_tensors,
                ..
            } => {
                if self.norm_source != SOURCE_COMPUTED {
                    self.read_ran(tensor_norms, 0).await?;
                    return Ok(Vec::new());
                }
                let bytes = *num_tensors as u64 * 4;
                Ok(f32s(&self.read_ran(tensor_norms, bytes).await?))
            }
            Source::Host { tensor_norms, .. } => Ok(tensor_norms.clone()),
        }
    }

    /// [`Report::tensor_norms`], blocking.
    pub fn tensor_norms_blocking(&self) -> Result<Vec<f32>> {
        pollster::block_on(self.tensor_norms())
    }

    /// `buffer[..bytes]` of a fresh GPU report whose recording has run, in one readback
    /// with the workspace's `ran` generation: [`Error::UnsubmittedReport`] when the device
    /// has not run it (its encoder was not submitted before this read's copy).
    async fn read_ran(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let Source::Gpu {
            gpu,
            ran,
            generation,
            ..
        } = &self.source
        else {
            unreachable!("a GPU report")
        };
        self.fresh()?;
        let mut read = gpu.read(&[(ran, RAN_AT, 8), (buffer, 0, bytes)]).await?;
        let done = u64::from_le_bytes(read[..8].try_into().expect("8 bytes read"));
        if done != *generation {
            return Err(Error::UnsubmittedReport);
        }
        Ok(read.split_off(8))
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
