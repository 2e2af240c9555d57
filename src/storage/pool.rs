//! Framework-pooled buffers: external tensors whose params and grads lie in the same
//! caller buffers join one slab (a *pool*), so a thousand sub-allocated tensors cost one
//! dispatch per kernel, not a thousand.
//!
//! A pool's tensors are packed in the set's virtual space like any other slab (the
//! optimizer states follow that packing), while their params and grads stay where the
//! caller put them. Each kernel binds a *window* of the caller's buffer — from the first
//! tensor's byte to the last one's end — and finds each 64-element block of the virtual
//! space through the pool's place table:
//!
//! ```text
//! places[b] = (P | (n & 15) << 28, G | (n >> 4) << 28)
//!     P, G: block b's first vec4 in the params window and in the grads window (< 2^28)
//!     n:    its elements inside its tensor, mod 64 (0: all 64; 1..=63: a partial last block)
//! ```
//!
//! Eight bytes per block: the update kernels read a row per vec4
//! (`shaders/access/places.wgsl`), so each word counts (on lavapipe a pooled AdamW step
//! took 1.25–1.27× its own slabs' time with a 16-byte row, 1.21–1.23× with this one).
//!
//! The norm kernels need no table: a pool's chunk rows hold grads-window offsets. When
//! params and grads share a buffer, the window covers both and the update kernel binds it
//! once, read-write (`shaders/update_shared.wgsl`).

use crate::consts::TENSOR_ALIGN_ELEMS;
use crate::error::{Error, Result};
use crate::kernels::abi::{Chunk, PLACE_OFFSET_MASK};
use crate::storage::arena::{range_bytes, Binding, BufferRange, ExternalTensor};
use crate::storage::layout::Layout;

/// A row of a pool's place table (module docs).
pub(crate) type PlaceRow = [u32; 2];

/// The largest window a pool binds, in bytes (4 GiB, Vulkan's largest binding): its vec4
/// offsets fit `PLACE_OFFSET_MASK`, the place table's offset bits.
const MAX_WINDOW_BYTES: u64 = (PLACE_OFFSET_MASK as u64 + 1) * 16;

// A block's live count mod 64 fits the 4 + 2 bits above its offsets.
const _: () = assert!(TENSOR_ALIGN_ELEMS == 64);

/// The place-table row of a block whose first vec4s are `params` and `grads` in the
/// windows (each below 2^28) and `live` of whose 64 elements are its tensor's.
fn place_row(params: u32, grads: u32, live: u32) -> PlaceRow {
    let n = live % TENSOR_ALIGN_ELEMS as u32;
    [params | (n & 15) << 28, grads | (n >> 4) << 28]
}

/// A byte window `[start, end)` of one buffer covering a pool's ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    start: u64,
    end: u64,
}

impl Window {
    const EMPTY: Window = Window {
        start: u64::MAX,
        end: 0,
    };

    /// The window grown to cover the range `r` of `numel` elements (whole vec4s).
    fn cover(self, r: &BufferRange, numel: u64) -> Window {
        Window {
            start: self.start.min(r.offset),
            end: self.end.max(r.offset + range_bytes(numel)),
        }
    }

    fn len(self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// The params and grads windows of a pool, grown tensor by tensor: one window (the union)
/// for both when params and grads share a buffer.
#[derive(Clone, Copy, Debug)]
struct PoolWindows {
    params: Window,
    grads: Window,
    shared: bool,
}

impl PoolWindows {
    fn new(shared: bool) -> PoolWindows {
        PoolWindows {
            params: Window::EMPTY,
            grads: Window::EMPTY,
            shared,
        }
    }

    /// The windows grown to cover one more tensor of `numel` elements.
    fn cover(self, params: &BufferRange, grads: &BufferRange, numel: u64) -> PoolWindows {
        let (p, g) = (
            self.params.cover(params, numel),
            self.grads.cover(grads, numel),
        );
        let (params, grads) = match self.shared {
            true => (p.cover(grads, numel), g.cover(params, numel)),
            false => (p, g),
        };
        PoolWindows {
            params,
            grads,
            ..self
        }
    }

    /// The windows of `members`, the j-th at `params[j]` and `grads[j]` with `numels[j]`
    /// elements.
    fn of(params: &[&BufferRange], grads: &[&BufferRange], numels: &[u64]) -> PoolWindows {
        let shared = params.first().map(|r| &r.buffer) == grads.first().map(|r| &r.buffer);
        (0..numels.len()).fold(PoolWindows::new(shared), |w, j| {
            w.cover(params[j], grads[j], numels[j])
        })
    }

    /// Whether each window fits in one binding of `max_binding` bytes and in the place
    /// table's offsets ([`PoolWindows::limit`]).
    fn fit(self, max_binding: u64) -> bool {
        let limit = Self::limit(max_binding);
        self.params.len() <= limit && self.grads.len() <= limit
    }

    /// The most bytes a window may span: one binding of `max_binding` bytes, and at most
    /// [`MAX_WINDOW_BYTES`] (the place table's offsets).
    fn limit(max_binding: u64) -> u64 {
        max_binding.min(MAX_WINDOW_BYTES)
    }
}

/// The pools of `externals`: the non-empty tensors grouped by (params buffer, grads
/// buffer), in order of params offset, each pool's windows within `max_binding` bytes and
/// 4 GiB (a pool that would pass it is cut in two). Indices are into `externals`.
pub(crate) fn group_pools(
    externals: &[ExternalTensor], numels: &[u64], max_binding: u64,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..externals.len()).filter(|&k| numels[k] > 0).collect();
    let key = |k: usize| (&externals[k].params.buffer, &externals[k].grads.buffer);
    // Stable: tensors at one offset (impossible once overlaps are rejected) keep their order.
    order.sort_by(|&a, &b| {
        key(a)
            .cmp(&key(b))
            .then(externals[a].params.offset.cmp(&externals[b].params.offset))
    });
    // The pools so far, and the windows of the last one.
    let mut pools: Vec<Vec<usize>> = Vec::new();
    let mut windows = PoolWindows::new(false);
    for k in order {
        let e = &externals[k];
        let grown = windows.cover(&e.params, &e.grads, numels[k]);
        match pools.last_mut() {
            Some(pool) if key(pool[0]) == key(k) && grown.fit(max_binding) => {
                pool.push(k);
                windows = grown;
            }
            _ => {
                pools.push(vec![k]);
                let shared = e.params.buffer == e.grads.buffer;
                windows = PoolWindows::new(shared).cover(&e.params, &e.grads, numels[k]);
            }
        }
    }
    // Pools in the order of their first tensor, so a set's slabs follow the caller's order.
    pools.sort_by_key(|pool| *pool.iter().min().unwrap_or(&0));
    pools
}

/// A pool's bindings and tables, computed on the host from where its tensors are.
pub(crate) struct PoolPlacement {
    /// The params window (with each tensor's byte offset in the buffer).
    pub params: Binding,
    /// The grads window; the same window as `params` when they share a buffer.
    pub grads: Binding,
    /// Params and grads in one buffer: the update kernel binds it once.
    pub shared: bool,
    /// The place table: a row per 64-element block of the slab's virtual space.
    pub places: Vec<PlaceRow>,
    /// The slab's chunk table with each start moved into the grads window.
    pub chunks: Vec<Chunk>,
}

/// The placement of pooled slab `s` of `layout`, whose tensors' ranges are `params[j]`
/// and `grads[j]` for the j-th tensor of the pool.
pub(crate) fn placement(
    layout: &Layout, s: usize, params: &[&BufferRange], grads: &[&BufferRange],
) -> PoolPlacement {
    let slab = &layout.slabs[s];
    let members = slab.pool.as_deref().unwrap_or(&[]);
    let numels: Vec<u64> = members.iter().map(|&t| layout.tensors[t].numel).collect();
    let windows = PoolWindows::of(params, grads, &numels);
    let (pw, gw, shared) = (windows.params, windows.grads, windows.shared);
    let binding = |r: &BufferRange, w: Window, ranges: &[&BufferRange]| Binding {
        buffer: r.buffer.clone(),
        offset: w.start,
        size: w.len(),
        data_size: w.len(),
        places: Some(ranges.iter().map(|r| r.offset).collect::<Vec<_>>().into()),
        compact: None,
    };
    let block = TENSOR_ALIGN_ELEMS;
    let mut places: Vec<PlaceRow> = vec![[0; 2]; (slab.len / block) as usize];
    // Per tensor of the pool: its first element in the virtual slab and in the grads window.
    let mut starts = Vec::with_capacity(members.len());
    for (j, &t) in members.iter().enumerate() {
        let virtual_start = layout.tensors[t].offset - slab.base;
        let p_vec4 = (params[j].offset - pw.start) / 16;
        let g_vec4 = (grads[j].offset - gw.start) / 16;
        for b in 0..numels[j].div_ceil(block) {
            // Below 2^28: the windows are at most MAX_WINDOW_BYTES (PoolWindows::fit).
            let (p, g) = (
                (p_vec4 + b * block / 4) as u32,
                (g_vec4 + b * block / 4) as u32,
            );
            let live = (numels[j] - b * block).min(block) as u32;
            places[(virtual_start / block + b) as usize] = place_row(p, g, live);
        }
        starts.push((virtual_start, (grads[j].offset - gw.start) / 4));
    }
    let chunks = layout.chunks[s]
        .iter()
        .map(|c| {
            let (virtual_start, grads_start) = starts[layout.pool_pos[c.tensor as usize] as usize];
            Chunk {
                start: (u64::from(c.start) - virtual_start + grads_start) as u32,
                ..*c
            }
        })
        .collect();
    PoolPlacement {
        params: binding(params[0], pw, params),
        grads: binding(grads[0], gw, grads),
        shared,
        places,
        chunks,
    }
}

/// Checks that moving tensors leaves each pool whole: the params of a pool's tensors in
/// one buffer and their grads in one buffer, each within one binding (and 4 GiB).
pub(crate) fn check_pools_whole(
    layout: &Layout, externals: &[ExternalTensor], first_external: usize, max_binding: u64,
) -> Result<()> {
    for slab in &layout.slabs {
        let Some(members) = &slab.pool else { continue };
        let ext = |t: usize| &externals[t - first_external];
        let first = ext(members[0]);
        if let Some(&t) = members
            .iter()
            .find(|&&t| ext(t).params.buffer != first.params.buffer)
        {
            return Err(Error::SplitPool(format!(
                "the parameters of {:?} would be in another buffer than those of {:?}, \
                 which shared their params buffer when the set was built; a pool's tensors \
                 move together (one rebind_externals call, every tensor of the pool into \
                 one buffer), else build a new set",
                ext(t).name,
                first.name
            )));
        }
        if let Some(&t) = members
            .iter()
            .find(|&&t| ext(t).grads.buffer != first.grads.buffer)
        {
            return Err(Error::SplitPool(format!(
                "the gradient of {:?} would be in another buffer than that of {:?}, which \
                 shares its params buffer; move the gradients of a pool together (one \
                 rebind_grads call, every tensor of the pool into one buffer)",
                ext(t).name,
                first.name
            )));
        }
        let params: Vec<&BufferRange> = members.iter().map(|&t| &ext(t).params).collect();
        let grads: Vec<&BufferRange> = members.iter().map(|&t| &ext(t).grads).collect();
        let numels: Vec<u64> = members.iter().map(|&t| layout.tensors[t].numel).collect();
        if !PoolWindows::of(&params, &grads, &numels).fit(max_binding) {
            return Err(Error::SplitPool(format!(
                "the parameters or gradients of the pool of {:?} would span more than one \
                 binding ({} bytes); keep a pool's tensors within that span",
                first.name,
                PoolWindows::limit(max_binding)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Context;

    /// A 64 KiB STORAGE buffer of `ctx`'s device, for the pool and rebind tests.
    pub(crate) fn storage_buffer(ctx: &Context) -> wgpu::Buffer {
        let (device, _) = ctx
            .device_queue()
            .expect("the pool tests need a GPU adapter (lavapipe will do)");
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pool test"),
            size: 1 << 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    }

    fn tensor(
        k: usize, params: (&wgpu::Buffer, u64), grads: (&wgpu::Buffer, u64),
    ) -> ExternalTensor {
        let range = |(buffer, offset): (&wgpu::Buffer, u64)| BufferRange {
            buffer: buffer.clone(),
            offset,
        };
        ExternalTensor {
            name: format!("x{k}"),
            shape: vec![64],
            params: range(params),
            grads: range(grads),
        }
    }

    /// Tensors sharing a (params, grads) buffer pair are one pool, cut where a window
    /// would pass the binding limit; empty tensors join none; a shared buffer's window
    /// covers params and grads together.
    #[test]
    fn pools_follow_buffer_pairs_and_the_binding_limit() {
        let ctx = Context::new().unwrap();
        let buffer = || storage_buffer(&ctx);
        let (p, g, other) = (buffer(), buffer(), buffer());
        // Listed out of offset order: pools sort by params offset.
        let mut externals: Vec<ExternalTensor> = [3, 0, 5, 1, 4, 2]
            .iter()
            .map(|&k| tensor(k, (&p, k as u64 * 256), (&g, 4096 + k as u64 * 256)))
            .collect();
        externals.push(tensor(6, (&other, 0), (&g, 0)));
        let mut numels = vec![64; externals.len()];
        numels[2] = 0;
        let pools = group_pools(&externals, &numels, 3 * 256);
        let names = |pool: &Vec<usize>| -> Vec<&str> {
            pool.iter().map(|&k| externals[k].name.as_str()).collect()
        };
        let got: Vec<Vec<&str>> = pools.iter().map(names).collect();
        // x5 (index 2) is empty; pools come in the caller's order of their first tensor.
        assert_eq!(got, [vec!["x3", "x4"], vec!["x0", "x1", "x2"], vec!["x6"]]);
        // One buffer for params and grads: each tensor's two ranges share its window.
        externals = (0..4)
            .map(|k| tensor(k, (&p, k as u64 * 512), (&p, k as u64 * 512 + 256)))
            .collect();
        let pools = group_pools(&externals, &[64; 4], 4 * 256);
        assert_eq!(pools, [vec![0, 1], vec![2, 3]]);
        // A device whose binding limit passes 4 GiB: the place table's offsets still cut
        // a pool there (tensors at 0, 3 GiB and 4 GiB of one buffer).
        let gib = 1u64 << 30;
        externals = [0, 3 * gib, 4 * gib]
            .iter()
            .enumerate()
            .map(|(k, &at)| tensor(k, (&p, at), (&g, k as u64 * 256)))
            .collect();
        let pools = group_pools(&externals, &[64; 3], u64::MAX);
        assert_eq!(pools, [vec![0, 1], vec![2]]);
    }
}
