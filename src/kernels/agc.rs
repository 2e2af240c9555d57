//! Adaptive gradient clipping (`shaders/agc.wgsl`): per slab a table of units (one
//! workgroup each), built on first use for each convention; one dispatch per slab.

use std::sync::Arc;

use crate::device::context::Gpu;
use crate::device::gpu::whole;
use crate::error::{Error, Result};
use crate::kernels::abi::{AgcOp, UnitRow};
use crate::kernels::cache::BindCache;
use crate::kernels::shaders::Body;
use crate::reference::{units_of, Units};
use crate::storage::layout::Layout;
use crate::storage::slabs::SlabDevice;

/// The unit tables of one convention and their bind groups.
pub(crate) struct AgcKernel {
    op: wgpu::Buffer,
    /// Per slab its unit table, `None` when the slab has no unit.
    units: Vec<Option<wgpu::Buffer>>,
    groups: BindCache,
}

impl AgcKernel {
    /// The unit tables of `layout` under `units` (in each slab's virtual space; a pool's
    /// kernels translate through its place table): [`Error::NotSupported`] for a tensor
    /// spanning slabs, [`Error::InvalidShape`] for a rank the convention does not define.
    pub(crate) fn new(gpu: &Gpu, layout: &Layout, units: Units) -> Result<AgcKernel> {
        let mut tables: Vec<Vec<UnitRow>> = vec![Vec::new(); layout.slabs.len()];
        for (t, tensor) in layout.tensors.iter().enumerate() {
            let pieces = layout.pieces(t);
            let Some(piece) = pieces.first() else {
                continue;
            };
            if pieces.len() > 1 {
                return Err(Error::NotSupported(format!(
                    "adaptive clipping of tensor {:?}: it spans slabs; AGC runs on tensors \
                     inside one slab (raise ArenaOptions::max_slab_bytes)",
                    tensor.name
                )));
            }
            let rows = units_of(&tensor.shape, units).ok_or_else(|| Error::InvalidShape {
                tensor: tensor.name.clone(),
                shape: tensor.shape.clone(),
                why: "Optax's unit convention defines ranks up to 5",
            })?;
            let base = piece.slab_offset as usize;
            tables[piece.slab].extend(rows.iter().map(|u| UnitRow {
                start: (base + u.start) as u32,
                stride: u.stride as u32,
                count: u.count as u32,
                _pad: 0,
            }));
        }
        let units = tables
            .iter()
            .map(|rows| {
                (!rows.is_empty()).then(|| {
                    let b = gpu.storage("agc units", (rows.len() * 16) as u64);
                    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(rows));
                    b
                })
            })
            .collect();
        use wgpu::BufferUsages as U;
        let op = gpu.buffer("agc op", 16, U::UNIFORM | U::COPY_DST);
        Ok(AgcKernel {
            op,
            units,
            groups: BindCache::new(layout.slabs.len()),
        })
    }

    /// The in-stream write of this call's options.
    pub(crate) fn op_write<'a>(&'a self, op: &'a AgcOp) -> (&'a wgpu::Buffer, u64, &'a [u8]) {
        (&self.op, 0, bytemuck::bytes_of(op))
    }

    /// Records the clip over every slab with units: one workgroup per unit.
    pub(crate) fn encode(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, slabs: &[Arc<SlabDevice>],
    ) {
        let workgroups = |s: usize| self.units[s].as_ref().map_or(0, |b| (b.size() / 16) as u32);
        let plan = |s: usize, slab: &SlabDevice| (slab.kernel(Body::Agc).into(), workgroups(s));
        self.groups.encode(pass, gpu, slabs, plan, |s, slab| {
            let kernel = slab.kernel(Body::Agc);
            let units = self.units[s].as_ref().expect("dispatched slabs have units");
            let mut entries = vec![
                (1, slab.grads.resource()),
                (2, whole(units)),
                (3, whole(&self.op)),
            ];
            // A pool whose params and grads share a buffer binds it once (at 1).
            if !slab.shared {
                entries.push((0, slab.params.resource()));
            }
            gpu.bind_group_at(kernel, &slab.with_places(kernel, entries))
        });
    }
}
