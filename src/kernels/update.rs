//! The bind-group recipe and dispatch shared by every update kernel (`shaders/sgd.wgsl`,
//! `shaders/adam.wgsl`, `shaders/rmsprop.wgsl`): per slab, params at binding 0, grads at 1,
//! the rule's states at 2, 3, 4, the step state at 5, the rule's group table (one row per
//! parameter group) at 6, the slab at 7, the slab's block→group table at 8.

use crate::arena::{Arena, Binding, SlabTables};
use crate::context::Gpu;
use crate::gpu::{elementwise_groups, whole};
use crate::layout::Layout;
use crate::shaders::Kernel;

/// An update kernel bound to one parameter set and one optimizer's states.
pub(crate) struct UpdateKernel {
    kernel: Kernel,
    /// The rule's group table, written in stream before each step.
    table: wgpu::Buffer,
    /// Per slab, its block→group table (fixed: a tensor never changes group).
    _blocks: Vec<wgpu::Buffer>,
    groups: Vec<wgpu::BindGroup>,
}

/// What an update kernel binds, per slab.
pub(crate) struct UpdateBindings<'a> {
    pub params: &'a [Binding],
    pub grads: &'a [Binding],
    /// The rule's states in binding order; `None`: a slot the kernel declares but this
    /// configuration does not use (e.g. `max_exp_avg_sq` without amsgrad).
    pub states: &'a [Option<Arena>],
    /// How many state bindings the kernel declares.
    pub state_slots: usize,
    /// The step state the finalize writes.
    pub step_state: &'a wgpu::Buffer,
    pub tables: &'a SlabTables,
    /// Per slab, its block→group table (`optim::groups::block_tables`).
    pub blocks: &'a [Vec<u32>],
    /// Per group, Adam's bias corrections (bound at 9 by the kernels that declare it).
    pub group_bias: &'a wgpu::Buffer,
}

impl UpdateKernel {
    pub(crate) fn new(
        gpu: &Gpu,
        kernel: Kernel,
        table_bytes: &[u8],
        row_bytes: usize,
        b: &UpdateBindings<'_>,
    ) -> UpdateKernel {
        // A uniform array of MAX_GROUPS rows; only the optimizer's groups are written.
        let rows = u64::from(crate::consts::MAX_GROUPS) * row_bytes as u64;
        use wgpu::BufferUsages as U;
        let table = gpu.buffer(kernel.name(), rows, U::UNIFORM | U::COPY_DST);
        gpu.queue.write_buffer(&table, 0, table_bytes);
        let blocks: Vec<wgpu::Buffer> = b
            .blocks
            .iter()
            .map(|t| {
                let buffer = gpu.storage("block groups", (t.len() * 4) as u64);
                gpu.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(t));
                buffer
            })
            .collect();
        // Unused state slots get distinct one-vec4 buffers: writable bindings must not alias.
        let dummies: Vec<wgpu::Buffer> = (0..b.state_slots)
            .map(|_| gpu.storage("unused state", 16))
            .collect();
        let declares_group_bias = kernel
            .bind_group_layout_entries()
            .iter()
            .any(|e| e.binding == 9);
        let groups = (0..b.params.len())
            .map(|s| {
                let mut entries = vec![(0, b.params[s].resource()), (1, b.grads[s].resource())];
                for (k, dummy) in dummies.iter().enumerate() {
                    let resource = match b.states.get(k) {
                        Some(Some(Arena::Gpu(bindings))) => bindings[s].resource(),
                        _ => whole(dummy),
                    };
                    entries.push((2 + k as u32, resource));
                }
                entries.extend([
                    (5, whole(b.step_state)),
                    (6, whole(&table)),
                    (7, whole(&b.tables.slab_uniforms[s])),
                    (8, whole(&blocks[s])),
                ]);
                if declares_group_bias {
                    entries.push((9, whole(b.group_bias)));
                }
                gpu.bind_group_at(kernel, &entries)
            })
            .collect();
        UpdateKernel {
            kernel,
            table,
            _blocks: blocks,
            groups,
        }
    }

    /// The in-stream write of the rule's group table for the next recorded step.
    pub(crate) fn table_write<'a>(&'a self, bytes: &'a [u8]) -> (&'a wgpu::Buffer, u64, &'a [u8]) {
        (&self.table, 0, bytes)
    }

    /// Records the update over every slab.
    pub(crate) fn encode(&self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, layout: &Layout) {
        let sizes = layout.slabs.iter().map(|s| elementwise_groups(s.len));
        gpu.dispatch_per_slab(pass, self.kernel, &self.groups, sizes);
    }
}
