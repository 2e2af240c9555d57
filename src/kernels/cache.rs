//! Bind groups cached per slab by the identity of what they bind ([`SlabDevice::id`]):
//! built once for a slab of clipstep's own, and for a caller's pool once per gradient
//! placement, so rebinding gradients every step builds nothing once each placement was
//! seen (a framework alternating between a few gradient buffers).

use std::sync::{Arc, Mutex};

use crate::device::context::Gpu;
use crate::kernels::shaders::PipelineKey;
use crate::storage::slabs::SlabDevice;

/// Bind groups kept per slab: the current placement and the last few before it. A bind
/// group keeps its buffers alive, so the cache is small (a caller's old gradient buffers
/// are released once they fall out of it).
const KEPT_PER_SLAB: usize = 4;

/// One kernel's bind groups, per slab, keyed by the slab's id.
pub(crate) struct BindCache {
    slabs: Vec<Mutex<Vec<(u64, wgpu::BindGroup)>>>,
}

impl BindCache {
    pub(crate) fn new(slabs: usize) -> BindCache {
        BindCache {
            slabs: (0..slabs).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// The bind group of slab `s` as it is now: cached, or built by `build` (most recent
    /// first; the least recently used one is dropped past [`KEPT_PER_SLAB`]).
    pub(crate) fn get(
        &self, s: usize, slab: &SlabDevice, build: impl FnOnce() -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        let mut kept = self.slabs[s].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kept.iter().position(|(id, _)| *id == slab.id) {
            let entry = kept.remove(k);
            let group = entry.1.clone();
            kept.insert(0, entry);
            return group;
        }
        let group = build();
        kept.insert(0, (slab.id, group.clone()));
        kept.truncate(KEPT_PER_SLAB);
        group
    }

    /// Records one dispatch per slab: `plan(s, slab)` gives its pipeline and workgroups,
    /// `build(s, slab)` its bind group when the cache has none for the slab as it is now.
    pub(crate) fn encode(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, slabs: &[Arc<SlabDevice>],
        plan: impl Fn(usize, &SlabDevice) -> (PipelineKey, u32),
        build: impl Fn(usize, &SlabDevice) -> wgpu::BindGroup,
    ) {
        // A slab with nothing to dispatch needs no bind group.
        let dispatches = slabs.iter().enumerate().filter_map(|(s, slab)| {
            let (key, groups) = plan(s, slab);
            (groups > 0).then(|| (key, self.get(s, slab, || build(s, slab)), groups))
        });
        gpu.dispatch_each(pass, dispatches);
    }
}
