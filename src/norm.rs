//! Gradient norms: `global_norm` and `per_tensor_norms`, the first two stages of every
//! clipped step. The GPU work is three deterministic passes (see `shaders/norm_*.wgsl`):
//! per-chunk partial sums, a per-tensor fold, and a single-workgroup finalize that writes
//! the total norm, the clip coefficient and the non-finite flag to the device step state.

use crate::error::{Error, Result};

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

    /// Shader code of the norm kind (`NORM_*` in `shaders/common.wgsl`) and the order p.
    pub(crate) fn shader_code(self) -> (u32, f32) {
        match self {
            Norm::L1 => (0, 1.0),
            Norm::L2 => (1, 2.0),
            Norm::Inf => (2, f32::INFINITY),
            Norm::P(1.0) => (0, 1.0),
            Norm::P(2.0) => (1, 2.0),
            Norm::P(p) => (3, p),
        }
    }
}

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::arena::{Arena, ParamSet, SlabTables};
use crate::consts::{VEC4_PER_INVOCATION, VEC_WIDTH, WORKGROUP_SIZE};
use crate::context::Gpu;
use crate::layout::Layout;
use crate::reference::{self, FinalizeInput, PowerSum, StepState};
use crate::report::{RawStepState, Report};
use crate::shaders::Kernel;
use crate::Nonfinite;

/// `struct OpParams` of `shaders/common.wgsl`: the options of one norm/finalize/clamp.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct OpParams {
    pub kind: u32,
    pub p: f32,
    pub num_tensors: u32,
    pub has_norm: u32,
    pub clip_norm: u32,
    pub max_norm: f32,
    pub inv_grad_scale: f32,
    pub policy: u32,
    pub count_step: u32,
    pub bias_correction: u32,
    /// `ln β1` (computed in f64 on the host) for Adam's bias correction.
    pub log_beta1: f32,
    /// `ln β2`.
    pub log_beta2: f32,
    pub clip_value: f32,
    pub num_big_tensors: u32,
    pub _pad: [u32; 2],
}

impl OpParams {
    /// A norm of type `norm` over the tensors of `layout`, nothing else.
    pub(crate) fn norm(norm: Norm, layout: &Layout) -> OpParams {
        let (kind, p) = norm.shader_code();
        OpParams {
            kind,
            p,
            num_tensors: layout.tensors.len() as u32,
            num_big_tensors: layout.big_tensors.len() as u32,
            has_norm: 1,
            clip_norm: 0,
            max_norm: 0.0,
            inv_grad_scale: 1.0,
            policy: Nonfinite::Propagate.shader_code(),
            count_step: 0,
            bias_correction: 0,
            log_beta1: 0.0,
            log_beta2: 0.0,
            clip_value: 0.0,
            _pad: [0; 2],
        }
    }
}

/// The device buffers and bind groups of the norm passes over one gradient arena, with
/// their own step state. A parameter set owns one for its standalone operations; each
/// optimizer owns another (its step state holds its step count).
pub(crate) struct NormWorkspace {
    pub state: wgpu::Buffer,
    pub tensor_norms: wgpu::Buffer,
    op: wgpu::Buffer,
    partial_groups: Vec<wgpu::BindGroup>,
    tensors_group: wgpu::BindGroup,
    finalize_group: wgpu::BindGroup,
    scale_groups: Vec<wgpu::BindGroup>,
    clamp_groups: Vec<wgpu::BindGroup>,
    per_tensor_groups: Vec<wgpu::BindGroup>,
    pub generation: Arc<AtomicU64>,
}

/// Workgroups for an elementwise kernel over `len` elements (see `shaders/elementwise.wgsl`).
pub(crate) fn elementwise_groups(len: u64) -> u32 {
    len.div_ceil(u64::from(VEC_WIDTH))
        .div_ceil(u64::from(WORKGROUP_SIZE * VEC4_PER_INVOCATION)) as u32
}

pub(crate) fn whole(b: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    b.as_entire_binding()
}

/// A bind group for `kernel` with `resources` at bindings 0, 1, 2, ...
pub(crate) fn bind_group(
    gpu: &Gpu,
    kernel: Kernel,
    resources: &[wgpu::BindingResource<'_>],
) -> wgpu::BindGroup {
    let numbered: Vec<_> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u32, r.clone()))
        .collect();
    bind_group_at(gpu, kernel, &numbered)
}

/// A bind group for `kernel` with each resource at its own binding number.
pub(crate) fn bind_group_at(
    gpu: &Gpu,
    kernel: Kernel,
    resources: &[(u32, wgpu::BindingResource<'_>)],
) -> wgpu::BindGroup {
    let layout = gpu.pipelines.get(kernel).get_bind_group_layout(0);
    let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
        .iter()
        .map(|(binding, r)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: r.clone(),
        })
        .collect();
    gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(kernel.name()),
        layout: &layout,
        entries: &entries,
    })
}

/// Records `kernel` once per slab with the slab's bind group, over `groups(slab)` workgroups.
pub(crate) fn dispatch_per_slab(
    pass: &mut wgpu::ComputePass<'_>,
    gpu: &Gpu,
    kernel: Kernel,
    groups: &[wgpu::BindGroup],
    sizes: impl Iterator<Item = u32>,
) {
    pass.set_pipeline(gpu.pipelines.get(kernel));
    for (group, n) in groups.iter().zip(sizes) {
        if n == 0 {
            continue;
        }
        let (x, y) = gpu.grid(n);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}

impl NormWorkspace {
    pub(crate) fn new(
        gpu: &Gpu,
        layout: &Layout,
        tables: &SlabTables,
        grads: &Arena,
    ) -> NormWorkspace {
        let Arena::Gpu(grads) = grads else {
            unreachable!("a workspace is built on a GPU context only")
        };
        let n = layout.tensors.len() as u64;
        let partials = gpu.storage("norm partials", u64::from(layout.total_chunks) * 8);
        let tensor_sums = gpu.storage("tensor sums", n * 8);
        let tensor_norms = gpu.storage("tensor norms", n * 4);
        let state = gpu.storage("step state", 32);
        let raw = RawStepState::from(StepState::default());
        gpu.queue.write_buffer(&state, 0, bytemuck::bytes_of(&raw));
        let op = gpu.uniform(
            "op params",
            bytemuck::bytes_of(&OpParams::norm(Norm::L2, layout)),
        );
        let partial_groups = (0..layout.slabs.len())
            .map(|s| {
                bind_group(
                    gpu,
                    Kernel::NormPartials,
                    &[
                        grads[s].resource(),
                        whole(&tables.chunks[s]),
                        whole(&partials),
                        whole(&op),
                        whole(&tables.slab_uniforms[s]),
                    ],
                )
            })
            .collect();
        let tensors_group = bind_group(
            gpu,
            Kernel::NormTensors,
            &[
                whole(&partials),
                whole(&tables.ranges),
                whole(&tensor_sums),
                whole(&op),
                whole(&tables.big_tensors),
            ],
        );
        let finalize_group = bind_group(
            gpu,
            Kernel::NormFinalize,
            &[
                whole(&tensor_sums),
                whole(&tensor_norms),
                whole(&state),
                whole(&op),
            ],
        );
        let scale_groups = (0..layout.slabs.len())
            .map(|s| {
                bind_group(
                    gpu,
                    Kernel::Scale,
                    &[
                        grads[s].resource(),
                        whole(&state),
                        whole(&tables.slab_uniforms[s]),
                    ],
                )
            })
            .collect();
        let clamp_groups = (0..layout.slabs.len())
            .map(|s| {
                bind_group(
                    gpu,
                    Kernel::Clamp,
                    &[
                        grads[s].resource(),
                        whole(&op),
                        whole(&tables.slab_uniforms[s]),
                    ],
                )
            })
            .collect();
        let per_tensor_groups = (0..layout.slabs.len())
            .map(|s| {
                bind_group(
                    gpu,
                    Kernel::ScalePerTensor,
                    &[
                        grads[s].resource(),
                        whole(&tables.chunks[s]),
                        whole(&tensor_norms),
                        whole(&state),
                        whole(&op),
                        whole(&tables.slab_uniforms[s]),
                    ],
                )
            })
            .collect();
        NormWorkspace {
            per_tensor_groups,
            state,
            tensor_norms,
            op,
            partial_groups,
            tensors_group,
            finalize_group,
            scale_groups,
            clamp_groups,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The in-stream write that sets the options of the passes recorded after it
    /// (see [`Gpu::write_in_stream`]).
    pub(crate) fn op_write<'a>(&'a self, op: &'a OpParams) -> (&'a wgpu::Buffer, &'a [u8]) {
        (&self.op, bytemuck::bytes_of(op))
    }

    /// Records the norm passes: per-slab partials and the per-tensor fold (when
    /// `op.has_norm`), then the finalize that writes the step state.
    pub(crate) fn encode_norm(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        gpu: &Gpu,
        layout: &Layout,
        op: &OpParams,
    ) {
        if op.has_norm != 0 {
            let groups = (0..layout.slabs.len()).map(|s| layout.partial_groups(s));
            dispatch_per_slab(
                pass,
                gpu,
                Kernel::NormPartials,
                &self.partial_groups,
                groups,
            );
            let (x, y) = gpu.grid(layout.fold_groups());
            pass.set_pipeline(gpu.pipelines.get(Kernel::NormTensors));
            pass.set_bind_group(0, &self.tensors_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        pass.set_pipeline(gpu.pipelines.get(Kernel::NormFinalize));
        pass.set_bind_group(0, &self.finalize_group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }

    /// Records `g ← g · clip_coef` over every slab.
    pub(crate) fn encode_scale(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        gpu: &Gpu,
        layout: &Layout,
    ) {
        let sizes = layout.slabs.iter().map(|s| elementwise_groups(s.len));
        dispatch_per_slab(pass, gpu, Kernel::Scale, &self.scale_groups, sizes);
    }

    /// Records `g_t ← g_t · min(1, max_norm / (‖g_t‖ + eps))` for every tensor t.
    pub(crate) fn encode_scale_per_tensor(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        gpu: &Gpu,
        layout: &Layout,
    ) {
        let sizes = layout.chunks.iter().map(|t| t.len() as u32);
        dispatch_per_slab(
            pass,
            gpu,
            Kernel::ScalePerTensor,
            &self.per_tensor_groups,
            sizes,
        );
    }

    /// Records `g ← clamp(g, -c, c)` over every slab.
    pub(crate) fn encode_clamp(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        gpu: &Gpu,
        layout: &Layout,
    ) {
        let sizes = layout.slabs.iter().map(|s| elementwise_groups(s.len));
        dispatch_per_slab(pass, gpu, Kernel::Clamp, &self.clamp_groups, sizes);
    }

    /// A report on this workspace's step state; earlier reports become stale.
    pub(crate) fn report(&self, gpu: &Arc<Gpu>, num_tensors: usize, policy: Nonfinite) -> Report {
        Report::gpu(
            gpu.clone(),
            self.state.clone(),
            self.tensor_norms.clone(),
            num_tensors,
            self.generation.clone(),
            policy,
        )
    }
}

/// The CPU reference's norm of a parameter set's gradients: the total power sum and the
/// per-tensor norms (of `g · inv_grad_scale`).
pub(crate) fn host_norm(
    layout: &Layout,
    grads: &[f32],
    norm: Norm,
    inv_grad_scale: f32,
) -> (PowerSum, Vec<f32>) {
    let mut total = PowerSum::default();
    let mut per_tensor = Vec::with_capacity(layout.tensors.len());
    for t in &layout.tensors {
        let sum = reference::power_sum(
            &grads[t.offset as usize..(t.offset + t.numel) as usize],
            norm,
        );
        per_tensor.push(reference::root(sum, norm) as f32 * inv_grad_scale);
        total = total.combine(sum, norm);
    }
    (total, per_tensor)
}

/// The CPU reference's step state of a standalone operation over `grads` (the twin of the
/// norm passes and finalize), with the per-tensor norms.
pub(crate) fn host_state(
    layout: &Layout,
    grads: &[f32],
    norm: Norm,
    max_norm: Option<f32>,
    policy: Nonfinite,
) -> (StepState, Vec<f32>) {
    let (sum, per_tensor) = host_norm(layout, grads, norm, 1.0);
    let input = FinalizeInput {
        sum: Some(sum),
        norm,
        max_norm,
        inv_grad_scale: 1.0,
        policy,
        count_step: false,
        betas: None,
    };
    (
        reference::finalize(&StepState::default(), &input),
        per_tensor,
    )
}

impl ParamSet {
    /// Records a pass over this set's own workspace into `encoder` and returns its report.
    pub(crate) fn encode_standalone(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        op: OpParams,
        policy: Nonfinite,
        body: impl FnOnce(&NormWorkspace, &mut wgpu::ComputePass<'_>, &Gpu, &Layout, &OpParams),
    ) -> Result<Report> {
        let gpu = self
            .ctx
            .gpu()
            .ok_or(Error::NeedsGpu("an encode_* operation"))?
            .clone();
        let ws = self.workspace.as_ref().expect("GPU sets have a workspace");
        gpu.write_in_stream(encoder, &[ws.op_write(&op)])?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("clipstep"),
                timestamp_writes: None,
            });
            body(ws, &mut pass, &gpu, &self.layout, &op);
        }
        Ok(ws.report(&gpu, self.layout.tensors.len(), policy))
    }

    /// Runs `encode` on a fresh encoder and submits it.
    pub(crate) fn submit_with<R>(
        &mut self,
        encode: impl FnOnce(&mut Self, &mut wgpu::CommandEncoder) -> Result<R>,
    ) -> Result<R> {
        let gpu = self.ctx.gpu().ok_or(Error::NeedsGpu("submit"))?.clone();
        let mut encoder = gpu.encoder();
        let out = encode(self, &mut encoder)?;
        gpu.submit(encoder)?;
        Ok(out)
    }

    /// Records the global norm `‖concat(g)‖` and every per-tensor norm `‖g_t‖` in one
    /// set of passes (PyTorch `get_total_norm` / `torch.linalg.vector_norm` per tensor).
    pub fn encode_global_norm(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        norm: Norm,
    ) -> Result<Report> {
        let norm = norm.validate()?;
        let op = OpParams::norm(norm, &self.layout);
        self.encode_standalone(
            encoder,
            op,
            Nonfinite::Propagate,
            |ws, pass, gpu, layout, op| ws.encode_norm(pass, gpu, layout, op),
        )
    }

    /// `‖concat(g)‖` (and the per-tensor norms, see [`Report::tensor_norms`]), submitted.
    /// Nothing is read back until the report is read.
    pub fn global_norm(&mut self, norm: Norm) -> Result<Report> {
        let norm = norm.validate()?;
        if self.ctx.gpu().is_none() {
            let Arena::Cpu(grads) = &self.grads else {
                unreachable!()
            };
            let (state, per_tensor) =
                host_state(&self.layout, grads, norm, None, Nonfinite::Propagate);
            return Ok(Report::host(state, per_tensor, Nonfinite::Propagate));
        }
        self.submit_with(|set, encoder| set.encode_global_norm(encoder, norm))
    }

    /// `[‖g_t‖ for t in tensors]`, read back (a host sync).
    pub fn per_tensor_norms(&mut self, norm: Norm) -> Result<Vec<f32>> {
        self.global_norm(norm)?.tensor_norms_blocking()
    }
}
