//! [`ParamSet::rebind_grads`]: a framework hands out new gradient buffers every backward
//! pass; the set follows them without building a pipeline, and a placement seen before
//! (a few buffers in rotation) finds its tables and bind groups again.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::arena::{validate_externals, Arena, BufferRange};
use crate::storage::param_set::ParamSet;
use crate::storage::pool::check_pools_whole;
use crate::storage::slabs::SlabDevice;

/// Placements kept per pool (the current one first), as the kernels' bind-group caches.
const RECENT_PLACEMENTS: usize = 4;

/// Where an external tensor moves: its gradients, or its parameters and gradients.
enum Move {
    Grads(BufferRange),
    Both(BufferRange, BufferRange),
}

impl ParamSet {
    /// Moves the gradients of external tensors to new ranges (of the same or other
    /// buffers, at any valid offsets), all at once: steps recorded after this call read
    /// them there.
    ///
    /// Every check of [`ParamSet::new`] runs again (STORAGE usage, alignment, bounds, a
    /// live buffer of this device, no overlap with any other params or grads range), and
    /// the tensors of one pool (those sharing a params buffer and a grads buffer) must
    /// keep their gradients in one buffer within one binding ([`Error::SplitPool`]).
    /// Nothing changes when a check fails. Builds no pipeline; a pool's tables and bind
    /// groups are rebuilt only for a placement not seen in its last four.
    pub fn rebind_grads<'a>(
        &mut self, moves: impl IntoIterator<Item = (&'a str, BufferRange)>,
    ) -> Result<()> {
        self.rebind(
            moves
                .into_iter()
                .map(|(name, grads)| (name, Move::Grads(grads))),
        )
    }

    /// Moves the parameters and the gradients of external tensors, `(name, params, grads)`,
    /// all at once, as [`ParamSet::rebind_grads`] moves gradients: a framework that hands
    /// out fresh parameter tensors (a copy-on-write clone) is followed at the cost of a
    /// table rebuild, not a new set. The optimizer states stay where they are (they follow
    /// the tensor, by name). The same checks run, and the tensors of one pool must also keep
    /// their parameters in one buffer within one binding ([`Error::SplitPool`]: then build
    /// a new set, carrying the state over through a checkpoint). Nothing changes when a
    /// check fails.
    pub fn rebind_externals<'a>(
        &mut self, moves: impl IntoIterator<Item = (&'a str, BufferRange, BufferRange)>,
    ) -> Result<()> {
        self.rebind(
            moves
                .into_iter()
                .map(|(name, params, grads)| (name, Move::Both(params, grads))),
        )
    }

    fn rebind<'a>(&mut self, moves: impl IntoIterator<Item = (&'a str, Move)>) -> Result<()> {
        let layout = self.layout.clone();
        let Some(device) = self.device.as_mut() else {
            return Err(Error::NeedsGpu("rebind_grads"));
        };
        let gpu = device.gpu.clone();
        let mut externals = device.externals.clone();
        let mut touched = vec![false; layout.slabs.len()];
        for (name, to) in moves {
            let t = layout.index(name)?;
            let info = &layout.tensors[t];
            if !info.external {
                return Err(Error::NotExternal(name.to_string()));
            }
            let external = &mut externals[t - device.first_external];
            match to {
                Move::Grads(grads) => external.grads = grads,
                Move::Both(params, grads) => {
                    external.params = params;
                    external.grads = grads;
                }
            }
            if let Some(piece) = layout.pieces(t).first() {
                touched[piece.slab] = true;
            }
        }
        // Every range as ParamSet::new checks it, the moved ones included.
        validate_externals(&gpu, &externals)?;
        let max_binding = gpu.limits.max_storage_buffer_binding_size;
        check_pools_whole(&layout, &externals, device.first_external, max_binding)?;
        let first = device.first_external;
        let rebuilt = gpu.scoped(|| {
            let mut rebuilt = Vec::new();
            for s in (0..layout.slabs.len()).filter(|&s| touched[s]) {
                let members = layout.slabs[s].pool.as_deref().unwrap_or(&[]);
                let params: Vec<&BufferRange> = members
                    .iter()
                    .map(|&t| &externals[t - first].params)
                    .collect();
                let grads: Vec<&BufferRange> = members
                    .iter()
                    .map(|&t| &externals[t - first].grads)
                    .collect();
                let seen = device.recent[s]
                    .iter()
                    .position(|slab| same_placement(slab, &params, &grads));
                let slab = match seen {
                    Some(k) => device.recent[s][k].clone(),
                    None => Arc::new(SlabDevice::pooled(&gpu, &layout, s, &params, &grads)),
                };
                rebuilt.push((s, slab));
            }
            Ok(rebuilt)
        })?;
        // Every check passed and every table was built: commit.
        let (Arena::Gpu(params), Arena::Gpu(grads)) = (&mut self.params, &mut self.grads) else {
            unreachable!("GPU sets hold GPU arenas")
        };
        for (s, slab) in rebuilt {
            params[s] = slab.params.clone();
            grads[s] = slab.grads.clone();
            let recent = &mut device.recent[s];
            recent.retain(|r| r.id != slab.id);
            recent.insert(0, slab.clone());
            recent.truncate(RECENT_PLACEMENTS);
            device.slabs[s] = slab;
        }
        device.externals = externals;
        Ok(())
    }
}

/// Whether `slab` (a placement of a pool) has its parameters at `params` and its
/// gradients at `grads`.
fn same_placement(slab: &SlabDevice, params: &[&BufferRange], grads: &[&BufferRange]) -> bool {
    let at = |binding: &crate::storage::arena::Binding, ranges: &[&BufferRange]| {
        binding.buffer == ranges[0].buffer
            && binding
                .places
                .as_deref()
                .is_some_and(|at| at.iter().copied().eq(ranges.iter().map(|r| r.offset)))
    };
    at(&slab.params, params) && at(&slab.grads, grads)
}

#[cfg(test)]
mod tests {
    use crate::{ArenaOptions, BufferRange, Context, ExternalTensor, ParamSet};

    /// Gradients that move back to a placement seen before find its tables (and so every
    /// kernel's cached bind groups) again; a new placement gets new ones.
    #[test]
    fn a_placement_seen_before_is_found_again() {
        let ctx = Context::new().unwrap();
        let buffer = || crate::storage::pool::tests::storage_buffer(&ctx);
        let (params, g1, g2) = (buffer(), buffer(), buffer());
        let at = |buffer: &wgpu::Buffer, offset: u64| BufferRange {
            buffer: buffer.clone(),
            offset,
        };
        let external = (0..2)
            .map(|k| ExternalTensor {
                name: format!("x{k}"),
                shape: vec![100],
                params: at(&params, k * 1024),
                grads: at(&g1, k * 1024),
            })
            .collect();
        let options = ArenaOptions {
            external,
            ..Default::default()
        };
        let mut set = ParamSet::new(&ctx, &[], options).unwrap();
        let id = |set: &ParamSet| set.device_slabs()[0].id;
        let first = id(&set);
        set.rebind_grads([("x0", at(&g2, 2048)), ("x1", at(&g2, 0))])
            .unwrap();
        let second = id(&set);
        assert_ne!(second, first);
        set.rebind_grads([("x0", at(&g1, 0)), ("x1", at(&g1, 1024))])
            .unwrap();
        assert_eq!(id(&set), first, "back to the first placement");
        set.rebind_grads([("x0", at(&g2, 2048)), ("x1", at(&g2, 0))])
            .unwrap();
        assert_eq!(id(&set), second, "back to the second placement");
        set.rebind_grads([("x0", at(&g2, 0)), ("x1", at(&g2, 2048))])
            .unwrap();
        assert!(![first, second].contains(&id(&set)), "a new placement");
    }
}
