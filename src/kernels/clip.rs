//! The clip kernels over a parameter set's gradients (`shaders/scale.wgsl`,
//! `shaders/scale_per_tensor.wgsl`, `shaders/clamp.wgsl`). They read the step state and
//! the options of the [`NormWorkspace`] recorded before them.

use crate::arena::{Binding, SlabTables};
use crate::context::Gpu;
use crate::gpu::{elementwise_groups, whole};
use crate::kernels::norm::NormWorkspace;
use crate::layout::Layout;
use crate::shaders::Kernel;

/// Per slab, the bind groups of the three clip kernels.
pub(crate) struct ClipKernels {
    scale: Vec<wgpu::BindGroup>,
    scale_per_tensor: Vec<wgpu::BindGroup>,
    clamp: Vec<wgpu::BindGroup>,
}

impl ClipKernels {
    pub(crate) fn new(
        gpu: &Gpu,
        tables: &SlabTables,
        grads: &[Binding],
        ws: &NormWorkspace,
    ) -> ClipKernels {
        let slabs = grads.len();
        ClipKernels {
            scale: gpu.bind_groups_per_slab(Kernel::Scale, slabs, |s| {
                vec![
                    grads[s].resource(),
                    whole(&ws.state),
                    whole(&tables.slab_uniforms[s]),
                ]
            }),
            scale_per_tensor: gpu.bind_groups_per_slab(Kernel::ScalePerTensor, slabs, |s| {
                vec![
                    grads[s].resource(),
                    whole(&tables.chunks[s]),
                    whole(&ws.tensor_norms),
                    whole(&ws.state),
                    whole(&ws.op),
                    whole(&tables.slab_uniforms[s]),
                ]
            }),
            clamp: gpu.bind_groups_per_slab(Kernel::Clamp, slabs, |s| {
                vec![
                    grads[s].resource(),
                    whole(&ws.op),
                    whole(&tables.slab_uniforms[s]),
                ]
            }),
        }
    }

    /// Records `g ← g · clip_coef` over every slab.
    pub(crate) fn encode_scale(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        gpu: &Gpu,
        layout: &Layout,
    ) {
        let sizes = layout.slabs.iter().map(|s| elementwise_groups(s.len));
        gpu.dispatch_per_slab(pass, Kernel::Scale, &self.scale, sizes);
    }

    /// Records `g_t ← g_t · min(1, max_norm / (‖g_t‖ + eps))` for every tensor t: one
    /// workgroup per chunk row.
    pub(crate) fn encode_scale_per_tensor(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        gpu: &Gpu,
        layout: &Layout,
    ) {
        let sizes = layout.chunks.iter().map(|t| t.len() as u32);
        gpu.dispatch_per_slab(pass, Kernel::ScalePerTensor, &self.scale_per_tensor, sizes);
    }

    /// Records `g ← clamp(g, -c, c)` over every slab.
    pub(crate) fn encode_clamp(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        gpu: &Gpu,
        layout: &Layout,
    ) {
        let sizes = layout.slabs.iter().map(|s| elementwise_groups(s.len));
        gpu.dispatch_per_slab(pass, Kernel::Clamp, &self.clamp, sizes);
    }
}
