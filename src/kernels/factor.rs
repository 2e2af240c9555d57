//! Adafactor's row and column reductions, before its trust pass
//! (`crate::storage::factored` lays out the tables): per slab, one workgroup per tile piece
//! (`shaders/factor_partials.wgsl`: each piece's row and column sums of `g²`), then one
//! workgroup per line of 64 rows or columns of every matrix of the set
//! (`shaders/factor_fold.wgsl`: folded in a fixed order and moved into `row_var` /
//! `col_var`), then one invocation per matrix (`shaders/factor_means.wgsl`: its row mean).
//! One dispatch per slab plus two, never one per tensor; every sum in a fixed order, so a
//! step is deterministic.

use crate::device::context::Gpu;
use crate::device::gpu::{whole, BufferPart};
use crate::kernels::abi::PIECE_FLOATS;
use crate::kernels::shaders::{declared, Body, RuleShader};
use crate::storage::arena::Arena;
use crate::storage::factored::FactorLayout;

/// What a factored rule adds to its update kernel.
pub(crate) struct Factor {
    /// Per tensor, its `FactorTensor` (binding 20).
    pub tensors: wgpu::Buffer,
    /// Per slab, its pieces (binding 19).
    pub pieces: Vec<wgpu::Buffer>,
    /// Per slab, its pieces' count: the partials' workgroups.
    pub piece_counts: Vec<u32>,
    /// `PIECE_FLOATS` per piece (binding 21).
    pub partials: wgpu::Buffer,
    /// Per matrix, its floored row mean (binding 22).
    pub means: wgpu::Buffer,
    /// The fold's bind group (set-wide, built once) and its workgroups.
    fold: (wgpu::BindGroup, u32),
    /// The means' bind group and their workgroups.
    means_pass: (wgpu::BindGroup, u32),
    rule: &'static RuleShader,
}

impl Factor {
    /// The reductions of `factors` for `rule`, over its state arenas `states` (slot order,
    /// the factored ones bound whole by every slab), with the step state, the rule's group
    /// table and the finalize's per-group scalars (`group_bias`: the step's weight).
    pub(crate) fn new(
        gpu: &Gpu, factors: &FactorLayout, rule: &'static RuleShader, states: &[Option<Arena>],
        step_state: &wgpu::Buffer, table: &BufferPart, group_bias: &wgpu::Buffer,
    ) -> Factor {
        let upload = |label: &str, bytes: &[u8]| {
            let b = gpu.storage(label, (bytes.len() as u64).max(16).next_multiple_of(4));
            gpu.queue.write_buffer(&b, 0, bytes);
            b
        };
        let tensors = upload("factor tensors", bytemuck::cast_slice(&factors.tensors));
        let pieces = factors
            .pieces
            .iter()
            .map(|p| upload("factor pieces", bytemuck::cast_slice(p)))
            .collect();
        let piece_counts = factors.pieces.iter().map(|p| p.len() as u32).collect();
        let partials_len = u64::from(factors.piece_count * PIECE_FLOATS).max(4) * 4;
        let partials = gpu.storage("factor partials", partials_len);
        let means = gpu.storage("factor means", factors.means_len.max(4) * 4);
        let lines = upload("factor lines", bytemuck::cast_slice(&factors.lines));
        let line_pieces = upload(
            "factor line pieces",
            bytemuck::cast_slice(&factors.line_pieces),
        );
        let batches = upload("factor batches", bytemuck::cast_slice(&factors.batches));
        let state = |k: usize| match &states[k] {
            Some(Arena::Gpu(bindings)) => whole(&bindings[0].buffer),
            _ => unreachable!("a factored rule keeps its three states on the device"),
        };
        let entries = || {
            vec![
                (2, state(0)),
                (3, state(1)),
                (5, whole(step_state)),
                (6, table.resource()),
                (9, whole(group_bias)),
                (20, whole(&tensors)),
                (21, whole(&partials)),
                (22, whole(&means)),
                (23, whole(&lines)),
                (24, whole(&line_pieces)),
                (25, whole(&batches)),
            ]
        };
        let fold_group = gpu.bind_group_at(
            Body::FactorFold(rule),
            &declared(Body::FactorFold(rule), entries()),
        );
        let means_group = gpu.bind_group_at(
            Body::FactorMeans(rule),
            &declared(Body::FactorMeans(rule), entries()),
        );
        Factor {
            tensors,
            pieces,
            piece_counts,
            partials,
            means,
            fold: (fold_group, factors.lines.len() as u32),
            means_pass: (means_group, (factors.batches.len() as u32).div_ceil(64)),
            rule,
        }
    }

    /// Records the fold of every line and the row means, after the partials of every
    /// slab (`UpdateKernel::encode` records those with the slab's bind groups).
    pub(crate) fn encode_folds(&self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu) {
        let ((fold, lines), (means, batches)) = (&self.fold, &self.means_pass);
        gpu.dispatch(pass, Body::FactorFold(self.rule), fold, *lines);
        gpu.dispatch(pass, Body::FactorMeans(self.rule), means, *batches);
    }
}
