//! The trust pass of LARS and LAMB (`shaders/trust_partials.wgsl` after each rule's trust
//! body, `shaders/trust_fold.wgsl`): per chunk `(Σp², Σu²)` of the parameters and of the
//! rule's update direction, then one invocation per tensor folds its chunks in order and
//! writes the tensor's trust ratio, which the rule's update reads through a per-slab
//! block→tensor table. Two dispatches per slab plus one, never one per tensor.

use crate::gpu::whole;
use crate::layout::Layout;
use crate::shaders::Kernel;

/// What a trust-ratio rule adds to its update kernel.
pub(crate) struct Trust {
    /// The rule's trust pass (`LarsTrust`, `LambTrust`).
    pub partials_kernel: Kernel,
    /// The rule's fold (`LarsFold`, `LambFold`).
    pub fold_kernel: Kernel,
    /// `(Σp², Σu²)` per chunk of the set.
    pub partials: wgpu::Buffer,
    /// Per tensor, its trust ratio.
    pub ratios: wgpu::Buffer,
    /// Per slab, the tensor of each 64-element block.
    pub block_tensor: Vec<wgpu::Buffer>,
    /// The fold's bind group (set-wide, built once).
    pub fold_group: wgpu::BindGroup,
}

/// The buffers a [`Trust`] is built from.
pub(crate) struct TrustSetup<'a> {
    /// `(trust pass, fold)` kernels of the rule.
    pub kernels: (Kernel, Kernel),
    /// Per tensor, its chunk range (the set's fold table).
    pub ranges: &'a wgpu::Buffer,
    /// The optimizer's options uniform (`num_tensors`).
    pub op: &'a wgpu::Buffer,
    /// Per tensor, its parameter group.
    pub tensor_group: &'a [u32],
}

impl Trust {
    pub(crate) fn new(
        gpu: &crate::context::Gpu,
        layout: &Layout,
        setup: &TrustSetup<'_>,
        group_table: &wgpu::Buffer,
    ) -> Trust {
        let upload = |label: &str, bytes: &[u8]| {
            let b = gpu.storage(label, bytes.len() as u64);
            gpu.queue.write_buffer(&b, 0, bytes);
            b
        };
        let partials = gpu.storage("trust partials", u64::from(layout.total_chunks) * 8);
        let ratios = gpu.storage("trust ratios", layout.tensors.len() as u64 * 4);
        let tensor_group = upload("tensor groups", bytemuck::cast_slice(setup.tensor_group));
        let block_tensor = layout
            .block_tensors()
            .iter()
            .map(|t| upload("block tensors", bytemuck::cast_slice(t)))
            .collect();
        let (partials_kernel, fold_kernel) = setup.kernels;
        let fold_group = gpu.bind_group_at(
            fold_kernel,
            &[
                (0, whole(&partials)),
                (1, whole(setup.ranges)),
                (2, whole(&ratios)),
                (3, whole(&tensor_group)),
                (4, whole(setup.op)),
                (6, whole(group_table)),
            ],
        );
        Trust {
            partials_kernel,
            fold_kernel,
            partials,
            ratios,
            block_tensor,
            fold_group,
        }
    }

    /// Workgroups of the fold: one invocation per tensor.
    pub(crate) fn fold_groups(layout: &Layout) -> u32 {
        (layout.tensors.len() as u32).div_ceil(crate::consts::WORKGROUP_SIZE)
    }
}
