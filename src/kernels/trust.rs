//! The trust pass of LARS and LAMB (`shaders/trust_partials.wgsl` after each rule's trust
//! body, `shaders/trust_fold.wgsl`): per chunk `(Σp², Σu²)` of the parameters and of the
//! rule's update direction, then the fold (a workgroup per tensor of more than
//! `SERIAL_FOLD_CHUNKS` chunks, an invocation per other tensor, as the norm's per-tensor
//! fold) writes each tensor's trust ratio, which the rule's update reads through a per-slab
//! block→tensor table. Two dispatches per slab (the trust pass, the update) plus one, never
//! one per tensor. The pass reads params and grads through the slab's access and addressing
//! parts, so it runs on pools and 16-bit slabs like the update; it walks the slab's chunks
//! in the virtual space, which for a pool is not the chunk table its norm reads (that one
//! holds grads-window offsets), so a pooled slab gets the virtual table of its own here.

use crate::device::gpu::{whole, BufferPart};
use crate::kernels::norm::options_of;
use crate::kernels::shaders::{Body, RuleShader};
use crate::storage::layout::Layout;
use crate::storage::slabs::SlabDevice;

/// What a trust-ratio rule adds to its update kernel.
pub(crate) struct Trust {
    /// `(Σp², Σu²)` per chunk of the set.
    pub partials: wgpu::Buffer,
    /// Per tensor, its trust ratio.
    pub ratios: wgpu::Buffer,
    /// Per slab, the tensor of each 64-element block.
    pub block_tensor: Vec<wgpu::Buffer>,
    /// Per pooled slab, its chunk table in the virtual space (`None`: a slab of
    /// clipstep's own, whose chunk table is virtual already).
    pub virtual_chunks: Vec<Option<wgpu::Buffer>>,
    /// The fold's bind group (set-wide, built once).
    pub fold_group: wgpu::BindGroup,
}

/// The buffers a [`Trust`] is built from.
pub(crate) struct TrustSetup<'a> {
    /// Per tensor, its chunk range (the set's fold table).
    pub ranges: &'a wgpu::Buffer,
    /// The tensors of more than `SERIAL_FOLD_CHUNKS` chunks (the set's fold table).
    pub big_tensors: &'a wgpu::Buffer,
    /// The optimizer's options uniform (`num_tensors`).
    pub op: &'a wgpu::Buffer,
    /// Per tensor, its parameter group.
    pub tensor_group: &'a [u32],
}

impl Trust {
    pub(crate) fn new(
        gpu: &crate::device::context::Gpu, layout: &Layout, rule: &'static RuleShader,
        setup: &TrustSetup<'_>, group_table: &BufferPart,
        extra: Vec<(u32, wgpu::BindingResource<'_>)>,
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
        let virtual_chunks = layout
            .slabs
            .iter()
            .zip(&layout.chunks)
            .map(|(slab, chunks)| {
                let table = bytemuck::cast_slice(chunks);
                slab.pool
                    .as_ref()
                    .map(|_| upload("virtual chunk table", table))
            })
            .collect();
        // The fold's bindings, and those a rule's own ratio declares (`extra`).
        let mut entries = vec![
            (0, whole(&partials)),
            (1, whole(setup.ranges)),
            (2, whole(&ratios)),
            (3, whole(&tensor_group)),
            (4, options_of(setup.op)),
            (6, group_table.resource()),
            (7, whole(setup.big_tensors)),
        ];
        entries.extend(extra);
        let fold_group = gpu.bind_group_at(Body::Fold(rule), &entries);
        Trust {
            partials,
            ratios,
            block_tensor,
            virtual_chunks,
            fold_group,
        }
    }

    /// The chunk table the trust pass walks on slab `s`: in the slab's virtual space.
    pub(crate) fn chunks<'a>(&'a self, s: usize, slab: &'a SlabDevice) -> &'a wgpu::Buffer {
        self.virtual_chunks[s].as_ref().unwrap_or(&slab.chunks)
    }
}
