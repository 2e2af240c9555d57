//! The clip kernels over a parameter set's gradients (`shaders/scale.wgsl`,
//! `shaders/scale_per_tensor.wgsl`, `shaders/clamp.wgsl`). They read the step state and
//! the options of the [`NormWorkspace`] recorded before them.

use std::sync::Arc;

use crate::device::context::Gpu;
use crate::device::gpu::{elementwise_groups, whole};
use crate::kernels::cache::BindCache;
use crate::kernels::norm::{options_of, NormWorkspace};
use crate::kernels::shaders::Body;
use crate::storage::layout::Layout;
use crate::storage::slabs::{FoldTables, SlabDevice};

/// The three clip kernels' bind groups, per slab, and the workspace buffers they bind.
pub(crate) struct ClipKernels {
    state: wgpu::Buffer,
    tensor_norms: wgpu::Buffer,
    op: wgpu::Buffer,
    sqrt_numel: wgpu::Buffer,
    scale: BindCache,
    scale_per_tensor: BindCache,
    clamp: BindCache,
}

impl ClipKernels {
    pub(crate) fn new(layout: &Layout, ws: &NormWorkspace, fold: &FoldTables) -> ClipKernels {
        let slabs = layout.slabs.len();
        ClipKernels {
            state: ws.state.clone(),
            tensor_norms: ws.tensor_norms.clone(),
            op: ws.op.clone(),
            sqrt_numel: fold.sqrt_numel.clone(),
            scale: BindCache::new(slabs),
            scale_per_tensor: BindCache::new(slabs),
            clamp: BindCache::new(slabs),
        }
    }

    /// Records `g ← g · clip_coef` over every slab.
    pub(crate) fn encode_scale(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, layout: &Layout,
        slabs: &[Arc<SlabDevice>],
    ) {
        let state = whole(&self.state);
        self.encode_elementwise(pass, gpu, layout, slabs, Body::Scale, &self.scale, state);
    }

    /// Records `g ← clamp(g, -c, c)` over every slab.
    pub(crate) fn encode_clamp(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, layout: &Layout,
        slabs: &[Arc<SlabDevice>],
    ) {
        let op = options_of(&self.op);
        self.encode_elementwise(pass, gpu, layout, slabs, Body::Clamp, &self.clamp, op);
    }

    /// Records elementwise `kernel` (scale or clamp: grads, `second`, slab) over every slab,
    /// each in its slab's variant.
    #[allow(clippy::too_many_arguments)]
    fn encode_elementwise(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, layout: &Layout,
        slabs: &[Arc<SlabDevice>], kernel: Body, cache: &BindCache,
        second: wgpu::BindingResource<'_>,
    ) {
        let plan = |s: usize, slab: &SlabDevice| {
            let size = elementwise_groups(layout.slabs[s].len);
            (slab.kernel(kernel).into(), size)
        };
        cache.encode(pass, gpu, slabs, plan, |_, slab| {
            let kernel = slab.kernel(kernel);
            let entries = vec![
                (0, slab.grads.resource()),
                (1, second.clone()),
                (2, whole(&slab.uniform)),
            ];
            gpu.bind_group_at(kernel, &slab.with_places(kernel, entries))
        });
    }

    /// Records `g_t ← g_t · coef_t` for every tensor t, the factor per `NormOp::per_tensor`
    /// (PyTorch's per-tensor clip, or Optax's block RMS): one workgroup per chunk row.
    pub(crate) fn encode_scale_per_tensor(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, layout: &Layout,
        slabs: &[Arc<SlabDevice>],
    ) {
        let kernel = Body::ScalePerTensor;
        let plan = |s: usize, slab: &SlabDevice| {
            (slab.kernel(kernel).into(), layout.chunks[s].len() as u32)
        };
        self.scale_per_tensor
            .encode(pass, gpu, slabs, plan, |_, slab| {
                let resources = [
                    slab.grads.resource(),
                    whole(&slab.chunks),
                    whole(&self.tensor_norms),
                    whole(&self.state),
                    options_of(&self.op),
                    whole(&slab.uniform),
                    whole(&self.sqrt_numel),
                ];
                gpu.bind_group(slab.kernel(kernel), &resources)
            });
    }
}
