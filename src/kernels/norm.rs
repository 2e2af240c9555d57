//! The norm passes and the finalize (`shaders/norm_partials.wgsl`,
//! `shaders/norm_tensors.wgsl`, `shaders/norm_finalize.wgsl`): per-chunk partial sums, a
//! per-tensor fold, and one workgroup that writes the total norm, the per-tensor norms and
//! the step state; for a set whose fold is a few workgroups, the fold runs in that one
//! workgroup (`shaders/norm_fold_finalize.wgsl`), a dispatch fewer. Fixed grids and fixed
//! orders: bit-identical results run to run, and whichever way the fold runs.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::consts::FUSED_FOLD_GROUPS;
use crate::device::context::Gpu;
use crate::device::gpu::{part, whole, BufferPart};
use crate::kernels::abi::{
    DeviceStepState, NormOp, Partial, POLICY_PROPAGATE, POLICY_ZERO_NANS, SOURCE_COMPUTED,
    SOURCE_NONE,
};
use crate::kernels::cache::BindCache;
use crate::kernels::shaders::{Body, KernelKey};
use crate::storage::layout::Layout;
use crate::storage::slabs::{FoldTables, SlabDevice};

/// The options of a norm over `layout`'s tensors with nothing else: no clip, no step
/// count, non-finite values propagated. `source` is `SOURCE_NONE` until a norm is chosen.
pub(crate) fn base_op(layout: &Layout) -> NormOp {
    NormOp {
        source: SOURCE_NONE,
        num_tensors: layout.tensors.len() as u32,
        num_big_tensors: layout.big_tensors.len() as u32,
        inv_grad_scale: 1.0,
        policy: POLICY_PROPAGATE,
        ..Default::default()
    }
}

/// The device buffers and bind groups of the norm passes over one gradient arena, with
/// their own step state. A parameter set owns one for its standalone operations; each
/// optimizer owns another (its step state holds its step count).
pub(crate) struct NormWorkspace {
    /// The step state the finalize writes.
    pub state: wgpu::Buffer,
    /// One f32 per tensor, written by the finalize.
    pub tensor_norms: wgpu::Buffer,
    /// One `Partial` per tensor (`Σ|g|^p` and flags), written by the per-tensor fold.
    pub tensor_sums: wgpu::Buffer,
    /// Per tensor, 1 when it counts in the total norm (all 1 unless an optimizer's
    /// parameter groups exclude some).
    pub in_norm: wgpu::Buffer,
    /// Per parameter group, the step's scalars the finalize writes: Adam's
    /// `(1 − β1^step, 1 − β2^step)` and NAdam's momentum coefficients (`vec4<f32>`).
    pub group_bias: wgpu::Buffer,
    /// Per parameter group, what the finalize computes them from (`GroupSchedule`), written
    /// when the optimizer is built and when a checkpoint replaces its configs.
    group_schedule: wgpu::Buffer,
    /// The options uniform, written in stream before each recording; an optimizer's
    /// workspace holds its group table after them, at `table_at` (one copy per step).
    pub op: wgpu::Buffer,
    /// Where the group table starts in `op` (the options block rounded up to the device's
    /// uniform offset alignment), and its bytes (0: a parameter set's own workspace).
    table_at: u64,
    table_len: u64,
    partials: wgpu::Buffer,
    partial_groups: BindCache,
    finalize_group: wgpu::BindGroup,
    /// Where the per-tensor fold runs, chosen once from the layout.
    fold: Fold,
    /// Recordings made on this workspace: a report is fresh while it is the last one.
    pub generation: Arc<AtomicU64>,
}

/// Where a recording's generation sits in the options buffer: just past the `NormOp`.
pub(crate) const RAN_AT: u64 = std::mem::size_of::<NormOp>() as u64;

/// The `NormOp` of options buffer `op` as the norm, trust and clip kernels bind it: its
/// start, without the generation and (an optimizer's) group table after it.
pub(crate) fn options_of(op: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    part(op, 0, RAN_AT)
}

/// Bytes of the options buffer: the `NormOp`, then the 8-byte generation.
const OP_BLOCK_BYTES: usize = RAN_AT as usize + 8;

/// The options buffer's bytes: the `NormOp`, then the recording's generation at [`RAN_AT`].
pub(crate) type OpBlock = [u8; OP_BLOCK_BYTES];

// The generation is copied and read back at RAN_AT: copies move whole 4-byte words.
const _: () = assert!(RAN_AT.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT));

/// The bytes of a recording's options write: `op`, then `generation`
/// ([`NormWorkspace::next_generation`]).
pub(crate) fn op_block(op: &NormOp, generation: [u8; 8]) -> OpBlock {
    let mut block = [0; OP_BLOCK_BYTES];
    block[..RAN_AT as usize].copy_from_slice(bytemuck::bytes_of(op));
    block[RAN_AT as usize..].copy_from_slice(&generation);
    block
}

/// Where a norm's per-tensor fold runs (`FUSED_FOLD_GROUPS`), with its bind group.
enum Fold {
    /// A fold of at most `FUSED_FOLD_GROUPS` workgroups: in the finalize's one workgroup,
    /// one dispatch for both (`norm_fold_finalize.wgsl`).
    InFinalize(wgpu::BindGroup),
    /// A larger fold: its own dispatch of `groups` workgroups before the finalize.
    Own { group: wgpu::BindGroup, groups: u32 },
}

impl NormWorkspace {
    /// The workspace of a norm over `layout` (its fold tables `tables`), with `num_groups`
    /// parameter groups' schedules and a group table of `table_len` bytes after the options
    /// (0 for none).
    pub(crate) fn new(
        gpu: &Gpu, layout: &Layout, tables: &FoldTables, num_groups: usize, table_len: u64,
    ) -> NormWorkspace {
        let n = layout.tensors.len() as u64;
        let partial_bytes = std::mem::size_of::<Partial>() as u64;
        let partials = gpu.storage(
            "norm partials",
            u64::from(layout.total_chunks) * partial_bytes,
        );
        let tensor_sums = gpu.storage("tensor sums", n * partial_bytes);
        let tensor_norms = gpu.storage("tensor norms", n * 4);
        let state = gpu.buffer(
            "step state",
            std::mem::size_of::<DeviceStepState>() as u64,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        );
        gpu.queue
            .write_buffer(&state, 0, bytemuck::bytes_of(&DeviceStepState::initial()));
        let align = u64::from(gpu.limits.min_uniform_buffer_offset_alignment);
        let table_at = (OP_BLOCK_BYTES as u64).next_multiple_of(align);
        let op = gpu.buffer(
            "norm op, recording ran, group table",
            if table_len > 0 {
                table_at + table_len
            } else {
                OP_BLOCK_BYTES as u64
            },
            wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
        );
        gpu.queue
            .write_buffer(&op, 0, &op_block(&base_op(layout), [0; 8]));
        let in_norm = gpu.storage("in norm", n * 4);
        let row = std::mem::size_of::<crate::kernels::abi::GroupSchedule>();
        let group_schedule = gpu.storage("group schedule", (num_groups.max(1) * row) as u64);
        let group_bias = gpu.storage("group bias", (num_groups.max(1) * 16) as u64);
        let all_in: Vec<u32> = vec![1; layout.tensors.len()];
        gpu.queue
            .write_buffer(&in_norm, 0, bytemuck::cast_slice(&all_in));
        let partial_groups = BindCache::new(layout.slabs.len());
        // norm_sums.wgsl's bindings (0, 3), the finalize's (1, 2, 4–6), the fold's (7–9).
        let sums = [(0, whole(&tensor_sums)), (3, options_of(&op))];
        let finalize_only = [
            (1, whole(&tensor_norms)),
            (2, whole(&state)),
            (4, whole(&in_norm)),
            (5, whole(&group_schedule)),
            (6, whole(&group_bias)),
        ];
        let fold_only = [
            (7, whole(&partials)),
            (8, whole(&tables.ranges)),
            (9, whole(&tables.big_tensors)),
        ];
        let group = |body: Body, parts: &[&[(u32, wgpu::BindingResource<'_>)]]| {
            gpu.bind_group_at(body, &parts.concat())
        };
        let finalize_group = group(Body::NormFinalize, &[&sums, &finalize_only]);
        let fold = match layout.fold_groups() {
            groups if groups <= FUSED_FOLD_GROUPS => Fold::InFinalize(group(
                Body::NormFoldFinalize,
                &[&sums, &finalize_only, &fold_only],
            )),
            groups => Fold::Own {
                group: group(Body::NormTensors, &[&sums, &fold_only]),
                groups,
            },
        };
        NormWorkspace {
            state,
            tensor_norms,
            tensor_sums,
            in_norm,
            group_bias,
            group_schedule,
            op,
            table_at,
            table_len,
            partials,
            partial_groups,
            finalize_group,
            fold,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The in-stream write of a recording (see [`Gpu::write_in_stream`]), one copy: the
    /// options of the passes recorded after it and the recording's generation into `ran()`,
    /// which a report reads to tell a submitted recording from one still in the caller's
    /// encoder (`bytes`: an [`op_block`], or a step's [`NormWorkspace::step_bytes`]).
    pub(crate) fn op_write<'a>(&'a self, bytes: &'a [u8]) -> (&'a wgpu::Buffer, u64, &'a [u8]) {
        (&self.op, 0, bytes)
    }

    /// The bytes of a step's one write ([`NormWorkspace::op_write`]): the options `block`,
    /// zeros up to the group table, then `table` (the groups' rows).
    pub(crate) fn step_bytes(&self, block: &OpBlock, table: &[u8]) -> Vec<u8> {
        debug_assert!(table.len() as u64 <= self.table_len);
        let mut bytes = Vec::with_capacity(self.table_at as usize + table.len());
        bytes.extend_from_slice(block);
        bytes.resize(self.table_at as usize, 0);
        bytes.extend_from_slice(table);
        bytes
    }

    /// The group table in the options buffer, as the update, trust and factor kernels
    /// bind it.
    pub(crate) fn group_table(&self) -> BufferPart {
        BufferPart {
            buffer: self.op.clone(),
            offset: self.table_at,
            size: self.table_len,
        }
    }

    /// The write of the groups' schedules (`group_schedules` of the engine).
    pub(crate) fn schedule_write<'a>(
        &'a self, rows: &'a [u8],
    ) -> (&'a wgpu::Buffer, u64, &'a [u8]) {
        (&self.group_schedule, 0, rows)
    }

    /// The buffer holding the generation of the last recording the device has run (8 bytes
    /// at [`RAN_AT`], written in stream by each recording): a report whose generation is
    /// not there yet was recorded into an encoder not yet submitted. The options buffer
    /// itself, so that the options and the generation are one copy.
    pub(crate) fn ran(&self) -> &wgpu::Buffer {
        &self.op
    }

    /// The generation of the next recording, as the bytes [`NormWorkspace::ran`] will hold
    /// at [`RAN_AT`] once it ran.
    pub(crate) fn next_generation(&self) -> [u8; 8] {
        (self.generation.load(std::sync::atomic::Ordering::SeqCst) + 1).to_le_bytes()
    }

    /// Records the norm passes: per-slab partials and the per-tensor fold (when the
    /// norm is computed here), then the finalize that writes the step state; a fold of at
    /// most `FUSED_FOLD_GROUPS` workgroups runs in the finalize's workgroup (one dispatch).
    pub(crate) fn encode(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, layout: &Layout,
        slabs: &[Arc<SlabDevice>], op: &NormOp,
    ) {
        if op.source == SOURCE_COMPUTED {
            let zero_nans = op.policy == POLICY_ZERO_NANS;
            // Per slab its variant: f32, bf16 or f16 gradients.
            let key = |slab: &SlabDevice| {
                slab.kernel(Body::NormPartials)
                    .for_norm(op.kind)
                    .zeroing_nans(zero_nans)
            };
            let plan = |s: usize, slab: &SlabDevice| (key(slab), layout.partial_groups(s));
            self.partial_groups
                .encode(pass, gpu, slabs, plan, |_, slab| {
                    let resources = [
                        slab.grads.resource(),
                        whole(&slab.chunks),
                        whole(&self.partials),
                        options_of(&self.op),
                        whole(&slab.uniform),
                        whole(&self.state),
                    ];
                    gpu.bind_group(slab.kernel(Body::NormPartials), &resources)
                });
            match &self.fold {
                Fold::InFinalize(group) => {
                    let fused = KernelKey::from(Body::NormFoldFinalize).for_norm(op.kind);
                    gpu.dispatch(pass, fused, group, 1);
                    return;
                }
                Fold::Own { group, groups } => {
                    let kernel = KernelKey::from(Body::NormTensors).for_norm(op.kind);
                    gpu.dispatch(pass, kernel, group, *groups);
                }
            }
        }
        let finalize = KernelKey::from(Body::NormFinalize).for_norm(op.kind);
        gpu.dispatch(pass, finalize, &self.finalize_group, 1);
    }
}
