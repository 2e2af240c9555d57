//! A parameter set's standalone operations: zeroing the gradients, norms and the clips
//! (by global norm, with a norm computed elsewhere, per tensor, block RMS, by value), each
//! submitted or recorded into a caller's encoder, or run by the CPU backend.

use super::{ParamSet, SetDevice};
use crate::device::context::Gpu;
use crate::error::{Error, Result};
use crate::kernels::abi::{
    DeviceStepState, NormOp, Partial, PER_TENSOR_BLOCK_RMS, SOURCE_COMPUTED, SOURCE_GIVEN,
};
use crate::kernels::host;
use crate::kernels::norm::{base_op, op_block};
use crate::options::{check_block_rms, check_clip_value, check_max_norm, Nonfinite, Norm};
use crate::reference;
use crate::report::Report;
use crate::shard::ShardPartial;
use crate::storage::arena::{check_transfer, Arena, Binding};
use crate::storage::layout::Layout;

/// What a standalone operation does to the gradients after the norm passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Apply {
    /// Nothing: a norm only.
    Nothing,
    /// `g ← g · clip_coef`.
    Scale,
    /// `g_t ← g_t · coef_t` per `NormOp::per_tensor` (PyTorch's per-tensor clip, or
    /// Optax's block RMS).
    ScalePerTensor,
    /// `g ← clamp(g, −c, c)`; no norm, no finalize.
    Clamp,
}

use std::sync::atomic::Ordering;

impl ParamSet {
    /// `g ← 0` for every gradient (PyTorch `zero_grad(set_to_none=False)`), submitted.
    pub fn zero_grad(&mut self) -> Result<()> {
        match (&mut self.grads, &self.device) {
            (Arena::Cpu(grads), _) => {
                grads.fill(0.0);
                Ok(())
            }
            (Arena::Gpu(grads), Some(device)) => device.gpu.submit_atomic(|encoder| {
                record_zero_grad(&device.gpu, &self.layout, grads, encoder)
            }),
            (Arena::Gpu(_), None) => unreachable!("GPU arenas belong to GPU sets"),
        }
    }

    /// Records `g ← 0` for every gradient (buffer clears, no kernel).
    pub fn encode_zero_grad(&mut self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let (Arena::Gpu(grads), Some(device)) = (&self.grads, &self.device) else {
            return Err(Error::NeedsGpu("encode_zero_grad"));
        };
        device
            .gpu
            .scoped(|| record_zero_grad(&device.gpu, &self.layout, grads, encoder))
    }

    /// The global norm `‖concat(g)‖` and every per-tensor norm `‖g_t‖`, from one set of
    /// passes (PyTorch `get_total_norm`; `torch.linalg.vector_norm` per tensor), submitted.
    /// Nothing is read back until the report is read.
    pub fn global_norm(&mut self, norm: Norm) -> Result<Report> {
        let op = self.norm_op(norm)?;
        self.run(None, op, Nonfinite::Propagate, Apply::Nothing)
    }

    /// Phase 1 of a sharded global norm (see [`crate::shard`]): this set's share
    /// `S = Σ_t Σ_i |g_{t,i}|^p` (`max` for L∞) over every tensor of the set, exact, with
    /// its NaN/±Inf flags, from one norm pass and one readback (a host sync). Under
    /// `Nonfinite::ZeroNans` NaN elements count as 0 (and are still flagged). Combine the
    /// ranks' partials with [`crate::shard::combine`] and apply the total with
    /// [`ParamSet::clip_grads_with_norm`] or [`crate::StepOptions::total_norm`]; for
    /// tensors replicated on every rank use [`crate::Optimizer::norm_partial`] with a
    /// [replicated](crate::ParamGroup::replicated) group.
    pub fn norm_partial(&mut self, norm: Norm, nonfinite: Nonfinite) -> Result<ShardPartial> {
        let counted = vec![true; self.layout.tensors.len()];
        self.norm_partial_counting(norm, nonfinite, &counted)
    }

    /// [`ParamSet::norm_partial`] counting only the tensors `t` with `counted[t]` in the
    /// sum (every tensor's flags count).
    pub(crate) fn norm_partial_counting(
        &mut self, norm: Norm, nonfinite: Nonfinite, counted: &[bool],
    ) -> Result<ShardPartial> {
        let op = NormOp {
            policy: nonfinite.code(),
            ..self.norm_op(norm)?
        };
        let sums = if self.device.is_some() {
            self.run(None, op, Nonfinite::Propagate, Apply::Nothing)?;
            let device = self.device.as_ref().expect("checked above");
            let bytes = (self.layout.tensors.len() * std::mem::size_of::<Partial>()) as u64;
            let raw = device
                .gpu
                .read_blocking(&[(&device.workspace.tensor_sums, 0, bytes)])?;
            bytemuck::pod_collect_to_vec::<u8, Partial>(&raw)
                .iter()
                .map(|p| (p.value, p.flags))
                .collect()
        } else {
            let Arena::Cpu(grads) = &self.grads else {
                unreachable!("a set without a device holds host arenas")
            };
            host::tensor_sums(&self.layout, grads, &op)
        };
        Ok(ShardPartial::from_tensor_sums(
            norm, nonfinite, &sums, counted,
        ))
    }

    /// Records [`ParamSet::global_norm`] into `encoder`.
    pub fn encode_global_norm(
        &mut self, encoder: &mut wgpu::CommandEncoder, norm: Norm,
    ) -> Result<Report> {
        let op = self.norm_op(norm)?;
        self.run(Some(encoder), op, Nonfinite::Propagate, Apply::Nothing)
    }

    /// `[‖g_t‖ for t in tensors]` in the report's [`Report::tensor_norms`] (the same pass
    /// as [`ParamSet::global_norm`], which the report also holds), submitted.
    pub fn per_tensor_norms(&mut self, norm: Norm) -> Result<Report> {
        self.global_norm(norm)
    }

    /// Records [`ParamSet::per_tensor_norms`] into `encoder`.
    pub fn encode_per_tensor_norms(
        &mut self, encoder: &mut wgpu::CommandEncoder, norm: Norm,
    ) -> Result<Report> {
        self.encode_global_norm(encoder, norm)
    }

    /// PyTorch `clip_grad_norm_(grads, max_norm, norm_type)`, submitted: the total norm
    /// `‖g‖`, then `g ← g · min(1, max_norm / (‖g‖ + 1e-6))` in place. The report holds
    /// `‖g‖` (what PyTorch returns). `Nonfinite::Propagate` scales a non-finite gradient
    /// anyway, as PyTorch does; `Skip`/`Error` leave every gradient untouched.
    pub fn clip_grad_norm(
        &mut self, max_norm: f32, norm: Norm, nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(None, op, nonfinite, Apply::Scale)
    }

    /// Records [`ParamSet::clip_grad_norm`] into `encoder`.
    pub fn encode_clip_grad_norm(
        &mut self, encoder: &mut wgpu::CommandEncoder, max_norm: f32, norm: Norm,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::Scale)
    }

    /// PyTorch `clip_grads_with_norm_(grads, max_norm, total_norm)`, submitted:
    /// `g ← g · min(1, max_norm / (total_norm + 1e-6))` with a total norm computed
    /// elsewhere (another rank's partial sums, an earlier [`ParamSet::global_norm`]), so
    /// the norm and its application compose. A NaN or infinite `total_norm` counts as
    /// non-finite gradients under `nonfinite`; a negative one is an error.
    pub fn clip_grads_with_norm(
        &mut self, max_norm: f32, total_norm: f32, nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.with_norm_op(max_norm, total_norm, nonfinite)?;
        self.run(None, op, nonfinite, Apply::Scale)
    }

    /// Records [`ParamSet::clip_grads_with_norm`] into `encoder`.
    pub fn encode_clip_grads_with_norm(
        &mut self, encoder: &mut wgpu::CommandEncoder, max_norm: f32, total_norm: f32,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.with_norm_op(max_norm, total_norm, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::Scale)
    }

    /// Per-tensor clipping, submitted: every tensor t scaled by its own coefficient,
    /// `g_t ← g_t · min(1, max_norm / (‖g_t‖ + 1e-6))` (as `clip_grad_norm_` called on each
    /// tensor alone), from one norm pass. The report's `tensor_norms` are the norms before
    /// clipping; its `total_norm` is the global norm. Under `Skip`/`Error`, any non-finite
    /// gradient leaves every gradient untouched.
    pub fn clip_grad_norm_per_tensor(
        &mut self, max_norm: f32, norm: Norm, nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(None, op, nonfinite, Apply::ScalePerTensor)
    }

    /// Records [`ParamSet::clip_grad_norm_per_tensor`] into `encoder`.
    pub fn encode_clip_grad_norm_per_tensor(
        &mut self, encoder: &mut wgpu::CommandEncoder, max_norm: f32, norm: Norm,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::ScalePerTensor)
    }

    /// Optax's `clip_by_block_rms(threshold)`, submitted: each tensor t scaled by
    /// `1 / max(1, rms(g_t) / threshold)` with `rms(g_t) = ‖g_t‖₂ / sqrt(numel_t)`, from
    /// one L2 norm pass. The report's `tensor_norms` are the L2 norms before clipping, its
    /// `total_norm` the global one. Under `Skip`/`Error`, any non-finite gradient leaves
    /// every gradient untouched; `ZeroNans` clips the gradients with their NaNs as 0.
    pub fn clip_by_block_rms(&mut self, threshold: f32, nonfinite: Nonfinite) -> Result<Report> {
        let op = self.block_rms_op(threshold, nonfinite)?;
        self.run(None, op, nonfinite, Apply::ScalePerTensor)
    }

    /// Records [`ParamSet::clip_by_block_rms`] into `encoder`.
    pub fn encode_clip_by_block_rms(
        &mut self, encoder: &mut wgpu::CommandEncoder, threshold: f32, nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.block_rms_op(threshold, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::ScalePerTensor)
    }

    /// PyTorch `clip_grad_value_(grads, clip_value)`, submitted:
    /// `g ← clamp(g, -clip_value, clip_value)` in place (NaN stays NaN).
    pub fn clip_grad_value(&mut self, clip_value: f32) -> Result<()> {
        let op = self.clip_value_op(clip_value)?;
        self.run(None, op, Nonfinite::Propagate, Apply::Clamp)
            .map(drop)
    }

    /// Records [`ParamSet::clip_grad_value`] into `encoder`.
    pub fn encode_clip_grad_value(
        &mut self, encoder: &mut wgpu::CommandEncoder, clip_value: f32,
    ) -> Result<()> {
        let op = self.clip_value_op(clip_value)?;
        self.run(Some(encoder), op, Nonfinite::Propagate, Apply::Clamp)
            .map(drop)
    }

    // --- the options of each operation ------------------------------------------------

    pub(super) fn norm_op(&self, norm: Norm) -> Result<NormOp> {
        let (kind, p) = norm.validate()?.code();
        Ok(NormOp {
            source: SOURCE_COMPUTED,
            kind,
            p,
            ..base_op(&self.layout)
        })
    }

    pub(super) fn clip_norm_op(
        &self, max_norm: f32, norm: Norm, nonfinite: Nonfinite,
    ) -> Result<NormOp> {
        check_max_norm(max_norm)?;
        Ok(NormOp {
            max_norm,
            policy: nonfinite.code(),
            ..self.norm_op(norm)?
        })
    }

    pub(super) fn block_rms_op(&self, threshold: f32, nonfinite: Nonfinite) -> Result<NormOp> {
        check_block_rms(threshold)?;
        Ok(NormOp {
            per_tensor: PER_TENSOR_BLOCK_RMS,
            ..self.clip_norm_op(threshold, Norm::L2, nonfinite)?
        })
    }

    pub(super) fn with_norm_op(
        &self, max_norm: f32, total_norm: f32, nonfinite: Nonfinite,
    ) -> Result<NormOp> {
        check_max_norm(max_norm)?;
        if total_norm < 0.0 {
            return Err(Error::InvalidTotalNorm(total_norm));
        }
        Ok(NormOp {
            source: SOURCE_GIVEN,
            given_norm: total_norm,
            max_norm,
            policy: nonfinite.code(),
            ..base_op(&self.layout)
        })
    }

    pub(super) fn clip_value_op(&self, clip_value: f32) -> Result<NormOp> {
        check_clip_value(clip_value)?;
        Ok(NormOp {
            clip_value,
            ..base_op(&self.layout)
        })
    }

    // --- running an operation -----------------------------------------------------------

    /// A standalone operation: recorded into `encoder`, or (without one) submitted on a
    /// GPU or run by the CPU backend. On the GPU the call's wgpu errors are its own (error
    /// scopes), and a submitted operation that fails runs none of its commands; the report
    /// replaces earlier ones only once the call succeeded.
    fn run(
        &mut self, encoder: Option<&mut wgpu::CommandEncoder>, op: NormOp, policy: Nonfinite,
        apply: Apply,
    ) -> Result<Report> {
        match (encoder, &self.device) {
            (Some(encoder), Some(device)) => {
                let report = device
                    .gpu
                    .scoped(|| device.record(encoder, &self.layout, &op, policy, apply))
                    .map(Report::commit)?;
                let generation = device.workspace.generation.load(Ordering::SeqCst);
                self.note_recorded(device.workspace.ran(), generation);
                Ok(report)
            }
            (Some(_), None) => Err(Error::NeedsGpu("an encode_* operation")),
            (None, Some(device)) => device
                .gpu
                .submit_atomic(|encoder| device.record(encoder, &self.layout, &op, policy, apply))
                .map(Report::commit),
            (None, None) => Ok(self.run_on_host(&op, policy, apply)),
        }
    }

    /// The CPU backend's twin of [`SetDevice::record`].
    fn run_on_host(&mut self, op: &NormOp, policy: Nonfinite, apply: Apply) -> Report {
        let Arena::Cpu(grads) = &mut self.grads else {
            unreachable!("a set without a device holds host arenas")
        };
        let (sum, per_tensor) = if op.source == SOURCE_COMPUTED {
            let (sum, per_tensor) =
                host::norm(&self.layout, grads, op, &DeviceStepState::initial(), None);
            (Some(sum), per_tensor)
        } else {
            (None, Vec::new())
        };
        let state = host::finalize(&DeviceStepState::initial(), op, sum);
        if state.skipped == 0 {
            for (t, info) in self.layout.tensors.iter().enumerate() {
                let g = &mut grads[info.offset as usize..(info.offset + info.numel) as usize];
                if matches!(apply, Apply::Scale | Apply::ScalePerTensor) {
                    g.iter_mut().for_each(|x| *x = host::zero_nan(*x, &state));
                }
                match apply {
                    Apply::Nothing => {}
                    Apply::Scale => {
                        reference::clip_grads_with_norm(&mut [g], op.max_norm, state.total_norm)
                    }
                    Apply::ScalePerTensor if op.per_tensor == PER_TENSOR_BLOCK_RMS => {
                        let coef = reference::block_rms_coef(per_tensor[t], g.len(), op.max_norm);
                        g.iter_mut().for_each(|x| *x *= coef);
                    }
                    Apply::ScalePerTensor => {
                        reference::clip_grads_with_norm(&mut [g], op.max_norm, per_tensor[t])
                    }
                    Apply::Clamp => reference::clip_grad_value(&mut [g], op.clip_value),
                }
                // A 16-bit gradient is written back rounded, as the device writes it.
                if apply != Apply::Nothing && info.dtype.is_16_bit() {
                    host::round16(g, info.dtype, None, info.offset);
                }
            }
        }
        Report::host(state, per_tensor, policy, op.source)
    }
}

impl SetDevice {
    /// Records a standalone operation: its options in stream, then one compute pass with
    /// the norm passes and finalize (unless it only clamps) and the clip kernel.
    fn record(
        &self, encoder: &mut wgpu::CommandEncoder, layout: &Layout, op: &NormOp, policy: Nonfinite,
        apply: Apply,
    ) -> Result<Report> {
        let (gpu, ws) = (&self.gpu, &self.workspace);
        let block = op_block(op, ws.next_generation());
        gpu.write_in_stream(encoder, &[ws.op_write(&block)])?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("clipstep"),
                timestamp_writes: None,
            });
            let slabs = &self.slabs;
            if apply != Apply::Clamp {
                ws.encode(&mut pass, gpu, layout, slabs, op);
            }
            match apply {
                Apply::Nothing => {}
                Apply::Scale => self.clips.encode_scale(&mut pass, gpu, layout, slabs),
                Apply::ScalePerTensor => self
                    .clips
                    .encode_scale_per_tensor(&mut pass, gpu, layout, slabs),
                Apply::Clamp => self.clips.encode_clamp(&mut pass, gpu, layout, slabs),
            }
        }
        Ok(Report::gpu(
            gpu,
            ws,
            layout.tensors.len(),
            policy,
            op.source,
        ))
    }
}

/// Records a clear of every gradient slab.
fn record_zero_grad(
    gpu: &Gpu, layout: &Layout, grads: &[Binding], encoder: &mut wgpu::CommandEncoder,
) -> Result<()> {
    let all = 0..grads.len();
    check_transfer(
        gpu,
        layout,
        grads,
        all,
        wgpu::BufferUsages::COPY_DST,
        "grads",
    )?;
    // A pool's tensors one by one: the gaps between them are the caller's.
    for (s, b) in grads.iter().enumerate() {
        for (_, at, bytes) in b.ranges(layout, s) {
            encoder.clear_buffer(&b.buffer, at, Some(bytes));
        }
    }
    Ok(())
}
