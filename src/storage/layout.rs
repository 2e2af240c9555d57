//! Where each tensor lives: a virtual linear space cut into slabs, and the chunk tables
//! that drive the norm kernels. Pure bookkeeping, no device.
//!
//! Tensors are packed in order, each starting on a multiple of
//! [`TENSOR_ALIGN_ELEMS`]; slab `s` holds elements `[s·C, (s+1)·C)` of that space, so a
//! tensor larger than a slab simply continues in the next one (starting on a multiple of
//! [`CHUNK_ELEMS`] when it crosses a slab boundary and C is one too: `place`). External tensors (in a
//! caller's buffers) come after, one slab per *pool*: tensors whose params and grads lie in
//! the same caller buffers, packed the same way in the virtual space (the optimizer states
//! follow it), while their params and grads stay where the caller put them (see
//! `crate::storage::pool`). Chunks cover each tensor's piece of a slab
//! in runs of at most [`CHUNK_ELEMS`] and never cross a tensor, so per-tensor norms come
//! from the same pass as the global one.

use std::collections::HashMap;

use crate::consts::{
    CHUNK_CLASSES, CHUNK_ELEMS, SERIAL_FOLD_CHUNKS, TENSOR_ALIGN_ELEMS, WORKGROUP_SIZE,
};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::kernels::abi::Chunk;

/// A tensor to allocate: a name, unique in its set, a shape (`numel = Π shape`), and
/// optionally its element type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Unique name.
    pub name: String,
    /// Shape; the empty shape is a scalar.
    pub shape: Vec<usize>,
    /// The element type of its gradient and of the parameters the model reads; `None`:
    /// the set's [`crate::ArenaOptions::dtype`].
    pub dtype: Option<Dtype>,
}

impl TensorSpec {
    /// `TensorSpec::new("w1", [4096, 1024])`, of the set's element type.
    pub fn new(name: impl Into<String>, shape: impl Into<Vec<usize>>) -> Self {
        TensorSpec {
            name: name.into(),
            shape: shape.into(),
            dtype: None,
        }
    }

    /// The same tensor with its own element type:
    /// `TensorSpec::new("ln.weight", [1024]).with_dtype(Dtype::F32)` in a bf16 set.
    pub fn with_dtype(self, dtype: Dtype) -> Self {
        TensorSpec {
            dtype: Some(dtype),
            ..self
        }
    }

    /// Number of elements: the product of the shape, saturating at `u64::MAX` (which no
    /// set accepts; [`TensorSpec::checked_numel`] says whether it overflowed).
    pub fn numel(&self) -> u64 {
        self.checked_numel().unwrap_or(u64::MAX)
    }

    /// The product of the shape, `None` if it overflows a u64.
    pub fn checked_numel(&self) -> Option<u64> {
        shape_numel(&self.shape)
    }

    /// The element count, or [`Error::TooLarge`] when it overflows or passes
    /// [`MAX_SET_ELEMENTS`].
    pub(crate) fn checked_len(&self) -> Result<u64> {
        match self.checked_numel() {
            Some(n) if n <= MAX_SET_ELEMENTS => Ok(n),
            n => Err(Error::TooLarge {
                what: format!(
                    "tensor {:?} of shape {:?} (elements)",
                    self.name, self.shape
                ),
                size: n.unwrap_or(u64::MAX),
                limit: MAX_SET_ELEMENTS,
            }),
        }
    }
}

/// The product of `shape`, `None` if it overflows a u64.
pub(crate) fn shape_numel(shape: &[usize]) -> Option<u64> {
    shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64))
}

/// The most elements a set may hold, padding included (2^45 − 2^14): its chunk indices
/// are u32, one chunk per 16,384 elements, with half the index space kept for the chunks
/// that tensor boundaries add. Memory runs out long before.
pub const MAX_SET_ELEMENTS: u64 = (u32::MAX as u64) / 2 * CHUNK_ELEMS as u64;

/// The packed length of `specs` (each tensor starting on a multiple of
/// [`TENSOR_ALIGN_ELEMS`]) after `start`, with every size and sum checked: an overflow or a
/// set past [`MAX_SET_ELEMENTS`] is [`Error::TooLarge`], found before anything is built.
pub(crate) fn packed_len(specs: &[TensorSpec], start: u64) -> Result<u64> {
    specs.iter().try_fold(start, |cursor, spec| {
        let end = cursor
            .checked_add(spec.checked_len()?)
            .map(|e| e.next_multiple_of(TENSOR_ALIGN_ELEMS))
            .filter(|&e| e <= MAX_SET_ELEMENTS);
        end.ok_or_else(|| set_too_large(cursor.saturating_add(spec.numel())))
    })
}

/// [`Error::TooLarge`] for a set of `size` elements, padding included.
fn set_too_large(size: u64) -> Error {
    Error::TooLarge {
        what: "elements of the set (padding included)".into(),
        size,
        limit: MAX_SET_ELEMENTS,
    }
}

/// Where a tensor of `numel` elements goes when the next free element is `cursor`, in a
/// run of slabs of `capacity` elements from `start`: at `cursor`, unless the tensor would
/// cross a slab boundary and the capacity is a multiple of [`CHUNK_ELEMS`]; then on the next
/// multiple of CHUNK_ELEMS from `start` (up to CHUNK_ELEMS − 1 elements of padding), so
/// every slab boundary it crosses falls on one of its own chunk boundaries. Its chunks are
/// then the same wherever it sits (the runs of CHUNK_ELEMS from its first element), and so
/// are their partial sums: a tensor's norm depends on its own gradients only, the
/// property that lets ranks of a sharded model reproduce one process's total bit for bit
/// (`crate::shard`).
///
/// With a smaller capacity that is a multiple of 256 (a caller's slab size), a crossing
/// tensor starts on the next multiple of 256 instead: the 8-bit optimizer states' blocks
/// of 256 elements from a tensor's start (`crate::storage::quantized`) then never straddle
/// two slabs either.
fn place(cursor: u64, numel: u64, start: u64, capacity: u64) -> u64 {
    let at = cursor - start;
    let crosses = at % capacity + numel > capacity;
    let quant_block = crate::reference::QUANT_BLOCK as u64;
    if crosses && capacity.is_multiple_of(u64::from(CHUNK_ELEMS)) {
        start + at.next_multiple_of(u64::from(CHUNK_ELEMS))
    } else if crosses && capacity.is_multiple_of(quant_block) {
        start + at.next_multiple_of(quant_block)
    } else {
        cursor
    }
}

/// A tensor of a parameter set, as placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements.
    pub numel: u64,
    /// First element in the set's virtual space.
    pub(crate) offset: u64,
    /// Whether the tensor lives in a caller's buffer.
    pub external: bool,
    /// The element type of its gradient and of the parameters the model reads.
    pub dtype: Dtype,
}

/// One slab: a range of the virtual space backed by one buffer binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlabInfo {
    /// First element in the virtual space.
    pub base: u64,
    /// Elements.
    pub len: u64,
    /// For a pool of external tensors, its tensors (indices into the set) in virtual order.
    pub pool: Option<Vec<usize>>,
    /// The element type of every tensor in the slab (one type per slab: a kernel's variant
    /// is chosen per slab).
    pub dtype: Dtype,
}

impl Chunk {
    /// Size class: 0 for a whole workgroup, k + 1 for `CHUNK_CLASSES[k]`, smallest last.
    pub(crate) fn class(&self) -> usize {
        CHUNK_CLASSES
            .iter()
            .rposition(|&(max, _)| self.len > max)
            .map_or(CHUNK_CLASSES.len(), |k| CHUNK_CLASSES.len() - 1 - k)
    }
}

/// A contiguous part of one tensor inside one slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub slab: usize,
    /// First element relative to the slab.
    pub slab_offset: u64,
    /// First element relative to the tensor.
    pub tensor_offset: u64,
    pub len: u64,
}

/// The placement of every tensor of a parameter set.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub tensors: Vec<TensorInfo>,
    pub slabs: Vec<SlabInfo>,
    /// Per slab, its chunk table ordered by [`Chunk::class`] (largest chunks first), each
    /// class in slab order.
    pub chunks: Vec<Vec<Chunk>>,
    /// Per slab, how many chunks of each class: whole-workgroup, then `CHUNK_CLASSES` from
    /// the largest down.
    pub class_counts: Vec<[u32; 3]>,
    /// Tensors folded by a workgroup of their own (more than [`SERIAL_FOLD_CHUNKS`] chunks).
    pub big_tensors: Vec<u32>,
    /// Per tensor, `[first global chunk, chunk count]`.
    pub ranges: Vec<[u32; 2]>,
    pub total_chunks: u32,
    /// Elements of the internal (non-external) space, padding included.
    pub internal_len: u64,
    /// Per tensor, its position in its slab's pool (0 for internal tensors).
    pub pool_pos: Vec<u32>,
    by_name: HashMap<String, usize>,
}

impl Layout {
    /// Places `internal` tensors in slabs of `slab_capacity` elements (a multiple of
    /// [`TENSOR_ALIGN_ELEMS`]), then the tensors of `external` pool by pool, one slab per
    /// pool (`pools` lists indices into `external`; each non-empty external tensor is in one
    /// pool, empty ones in none: they need no binding). Every tensor is f32.
    #[cfg(test)]
    pub(crate) fn new(
        internal: &[TensorSpec], external: &[TensorSpec], pools: &[Vec<usize>], slab_capacity: u64,
    ) -> Result<Layout> {
        Self::with_dtype(internal, external, pools, slab_capacity, Dtype::F32)
    }

    /// [`Layout::new`] with element types: each internal tensor of its spec's dtype, else
    /// `default`. The tensors of each type are packed together, f32 first, then bf16, then
    /// f16 (each in the given order), and each type's run is cut into its own slabs, so a
    /// slab holds one type. External tensors are f32.
    pub(crate) fn with_dtype(
        internal: &[TensorSpec], external: &[TensorSpec], pools: &[Vec<usize>], slab_capacity: u64,
        default: Dtype,
    ) -> Result<Layout> {
        debug_assert!(slab_capacity > 0 && slab_capacity.is_multiple_of(TENSOR_ALIGN_ELEMS));
        if internal.is_empty() && external.is_empty() {
            return Err(Error::EmptyParamSet);
        }
        // Every size checked before anything is placed (the externals once the internal
        // tensors' padding is known, below); below, sums cannot overflow.
        packed_len(internal, 0)?;
        let mut by_name = HashMap::new();
        let mut tensors: Vec<TensorInfo> = internal
            .iter()
            .map(|spec| TensorInfo {
                dtype: spec.dtype.unwrap_or(default),
                ..info(spec, 0, false)
            })
            .collect();
        let mut cursor = 0u64;
        let mut slabs: Vec<SlabInfo> = Vec::new();
        for dtype in [Dtype::F32, Dtype::Bf16, Dtype::F16] {
            let start = cursor;
            for t in tensors.iter_mut().filter(|t| t.dtype == dtype) {
                t.offset = place(cursor, t.numel, start, slab_capacity);
                cursor = (t.offset + t.numel).next_multiple_of(TENSOR_ALIGN_ELEMS);
            }
            let mut base = start;
            while base < cursor {
                let len = slab_capacity.min(cursor - base);
                slabs.push(SlabInfo {
                    base,
                    len,
                    pool: None,
                    dtype,
                });
                base += len;
            }
        }
        // Chunk-aligned tensors add padding past packed_len's count.
        let internal_len = cursor;
        if internal_len > MAX_SET_ELEMENTS {
            return Err(set_too_large(internal_len));
        }
        packed_len(external, internal_len)?;
        let first_external = tensors.len();
        tensors.extend(external.iter().map(|spec| info(spec, 0, true)));
        let mut pool_pos = vec![0u32; tensors.len()];
        for pool in pools {
            let base = cursor;
            let mut members = Vec::with_capacity(pool.len());
            for (pos, &k) in pool.iter().enumerate() {
                let t = first_external + k;
                tensors[t].offset = cursor;
                pool_pos[t] = pos as u32;
                members.push(t);
                cursor = (cursor + tensors[t].numel).next_multiple_of(TENSOR_ALIGN_ELEMS);
            }
            slabs.push(SlabInfo {
                base,
                len: cursor - base,
                pool: Some(members),
                dtype: Dtype::F32,
            });
        }
        // Empty external tensors sit at the end of the space, in no slab.
        for t in &mut tensors[first_external..] {
            if t.numel == 0 {
                t.offset = cursor;
            }
        }
        for (i, t) in tensors.iter().enumerate() {
            if by_name.insert(t.name.clone(), i).is_some() {
                return Err(Error::DuplicateTensorName(t.name.clone()));
            }
        }
        let mut layout = Layout {
            tensors,
            slabs,
            chunks: Vec::new(),
            class_counts: Vec::new(),
            big_tensors: Vec::new(),
            ranges: Vec::new(),
            total_chunks: 0,
            internal_len,
            pool_pos,
            by_name,
        };
        layout.build_chunks()?;
        Ok(layout)
    }

    fn build_chunks(&mut self) -> Result<()> {
        let mut chunks = vec![Vec::new(); self.slabs.len()];
        // Per tensor: (slab of its first chunk, local index there, count).
        let mut firsts = Vec::with_capacity(self.tensors.len());
        for t in 0..self.tensors.len() {
            let mut first = None;
            let mut count = 0u64;
            for piece in self.pieces(t) {
                let table: &mut Vec<Chunk> = &mut chunks[piece.slab];
                first.get_or_insert((piece.slab, table.len()));
                let mut start = piece.slab_offset;
                let end = piece.slab_offset + piece.len;
                while start < end {
                    let len = (end - start).min(u64::from(CHUNK_ELEMS));
                    table.push(Chunk {
                        tensor: t as u32,
                        start: start as u32,
                        len: len as u32,
                        partial: 0,
                    });
                    start += len;
                    count += 1;
                }
            }
            firsts.push((first, count));
        }
        let mut base = 0u64;
        let chunk_base: Vec<u32> = chunks
            .iter()
            .map(|table| {
                let b = base;
                base += table.len() as u64;
                b as u32
            })
            .collect();
        if base > u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                what: format!("number of {CHUNK_ELEMS}-element chunks"),
                size: base,
                limit: u64::from(u32::MAX),
            });
        }
        self.total_chunks = base as u32;
        self.ranges = firsts
            .into_iter()
            .map(|(first, count)| match first {
                Some((slab, local)) => [chunk_base[slab] + local as u32, count as u32],
                None => [0, 0],
            })
            .collect();
        for (s, table) in chunks.iter_mut().enumerate() {
            for (local, c) in table.iter_mut().enumerate() {
                c.partial = chunk_base[s] + local as u32;
            }
            // Large chunks first: the partials kernel gives each a workgroup, then packs
            // smaller ones several to a workgroup. Each row keeps its own partial index.
            table.sort_by_key(Chunk::class);
        }
        self.class_counts = chunks
            .iter()
            .map(|t| {
                let mut counts = [0u32; 3];
                t.iter().for_each(|c| counts[c.class()] += 1);
                counts
            })
            .collect();
        self.big_tensors = (0..self.ranges.len() as u32)
            .filter(|&t| self.ranges[t as usize][1] > SERIAL_FOLD_CHUNKS)
            .collect();
        self.chunks = chunks;
        Ok(())
    }

    /// Workgroups of the partials pass over slab `s`: one per large chunk, then each
    /// class packed `WORKGROUP_SIZE / lanes` chunks to a workgroup.
    pub(crate) fn partial_groups(&self, s: usize) -> u32 {
        let [big, mid, small] = self.class_counts[s];
        let per_group = |k: usize| WORKGROUP_SIZE / CHUNK_CLASSES[k].1;
        big + mid.div_ceil(per_group(1)) + small.div_ceil(per_group(0))
    }

    /// The chunks workgroup `w` of the partials pass over a slab with `counts` chunks per
    /// class reduces, and the invocations it gives each: the twin of `main` in
    /// `shaders/norm_partials.wgsl`. Each class's chunks are dealt to its own run of
    /// workgroups, `WORKGROUP_SIZE / lanes` consecutive chunks apiece, and each range is cut
    /// at its class's end, so no chunk has two writers (tested over every count near a
    /// class boundary). Empty for the grid's surplus workgroups.
    #[cfg(test)]
    pub(crate) fn partials_rows(counts: [u32; 3], w: u32) -> (u32, std::ops::Range<u32>) {
        let [big, mid, small] = counts;
        let per_mid = WORKGROUP_SIZE / CHUNK_CLASSES[1].1;
        let per_small = WORKGROUP_SIZE / CHUNK_CLASSES[0].1;
        let mid_groups = mid.div_ceil(per_mid);
        if w < big {
            return (WORKGROUP_SIZE, w..w + 1);
        }
        if w - big < mid_groups {
            let first = big + (w - big) * per_mid;
            return (CHUNK_CLASSES[1].1, first..(first + per_mid).min(big + mid));
        }
        let end = big + mid + small;
        let first = big + mid + (w - big - mid_groups) * per_small;
        (
            CHUNK_CLASSES[0].1,
            first.min(end)..(first + per_small).min(end),
        )
    }

    /// Workgroups of the per-tensor fold.
    pub(crate) fn fold_groups(&self) -> u32 {
        self.big_tensors.len() as u32 + (self.tensors.len() as u32).div_ceil(WORKGROUP_SIZE)
    }

    /// The parts of tensor `t`, one per slab it touches, in order.
    pub(crate) fn pieces(&self, t: usize) -> Vec<Piece> {
        let tensor = &self.tensors[t];
        let (start, end) = (tensor.offset, tensor.offset + tensor.numel);
        if tensor.numel == 0 {
            return Vec::new();
        }
        self.slabs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.base < end && start < s.base + s.len)
            .map(|(slab, s)| {
                let lo = start.max(s.base);
                let hi = end.min(s.base + s.len);
                Piece {
                    slab,
                    slab_offset: lo - s.base,
                    tensor_offset: lo - start,
                    len: hi - lo,
                }
            })
            .collect()
    }

    /// Per slab, one entry per 64-element block of its virtual space: `value(t)` for the
    /// blocks of tensor `t` (every tensor starts on a block, so a block is one tensor's),
    /// `empty` for blocks no tensor touches.
    pub(crate) fn per_block(&self, empty: u32, value: impl Fn(usize) -> u32) -> Vec<Vec<u32>> {
        let mut tables: Vec<Vec<u32>> = self
            .slabs
            .iter()
            .map(|s| vec![empty; s.len.div_ceil(TENSOR_ALIGN_ELEMS).max(1) as usize])
            .collect();
        for t in 0..self.tensors.len() {
            let entry = value(t);
            for p in self.pieces(t) {
                let first = p.slab_offset / TENSOR_ALIGN_ELEMS;
                let end = (p.slab_offset + p.len).div_ceil(TENSOR_ALIGN_ELEMS);
                tables[p.slab][first as usize..end as usize].fill(entry);
            }
        }
        tables
    }

    /// Per slab, the tensor of each 64-element block (0 for a block of no tensor).
    pub(crate) fn block_tensors(&self) -> Vec<Vec<u32>> {
        self.per_block(0, |t| t as u32)
    }

    pub(crate) fn index(&self, name: &str) -> Result<usize> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownTensor(name.to_string()))
    }

    /// Elements of all tensors, padding excluded.
    pub(crate) fn numel(&self) -> u64 {
        self.tensors.iter().map(|t| t.numel).sum()
    }
}

fn info(spec: &TensorSpec, offset: u64, external: bool) -> TensorInfo {
    TensorInfo {
        name: spec.name.clone(),
        shape: spec.shape.clone(),
        numel: spec.numel(),
        offset,
        external,
        dtype: Dtype::F32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(sizes: &[usize]) -> Vec<TensorSpec> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| TensorSpec::new(format!("t{i}"), [n]))
            .collect()
    }

    #[test]
    fn every_chunk_has_exactly_one_partials_workgroup() {
        // Chunk counts on and next to every class boundary: 0, 1, a workgroup's worth of
        // mid (8) and small (32) chunks, and one either side of it and of its double.
        let near = |per: u32| {
            vec![
                0,
                1,
                per - 1,
                per,
                per + 1,
                2 * per - 1,
                2 * per,
                2 * per + 1,
            ]
        };
        let (per_mid, per_small) = (4, 32);
        assert_eq!(WORKGROUP_SIZE / CHUNK_CLASSES[1].1, per_mid);
        assert_eq!(WORKGROUP_SIZE / CHUNK_CLASSES[0].1, per_small);
        for big in [0, 1, 2, 5] {
            for &mid in &near(per_mid) {
                for &small in &near(per_small) {
                    let counts = [big, mid, small];
                    let total = big + mid + small;
                    let groups = big + mid.div_ceil(per_mid) + small.div_ceil(per_small);
                    let mut writers = vec![0u32; total as usize];
                    // The grid is rounded up (2D past the limit): surplus workgroups too.
                    for w in 0..groups + 40 {
                        let (lanes, rows) = Layout::partials_rows(counts, w);
                        assert!(w < groups || rows.is_empty(), "{counts:?}: surplus {w}");
                        for row in rows {
                            let class = if row < big {
                                0
                            } else if row < big + mid {
                                1
                            } else {
                                2
                            };
                            let want = [WORKGROUP_SIZE, 64, 8][class];
                            assert_eq!(lanes, want, "{counts:?}: chunk {row} of class {class}");
                            writers[row as usize] += 1;
                        }
                    }
                    assert!(writers.iter().all(|&n| n == 1), "{counts:?}: {writers:?}");
                }
            }
        }
    }

    #[test]
    fn only_whole_chunks_take_a_workgroup_each() {
        let class = |len: u32| {
            Chunk {
                len,
                ..Chunk::default()
            }
            .class()
        };
        assert_eq!(class(CHUNK_ELEMS), 0);
        assert_eq!(class(CHUNK_ELEMS - 1), 1);
        assert_eq!(class(8193), 1);
        assert_eq!(class(2049), 1);
        assert_eq!(class(2048), 2);
        assert_eq!(class(1), 2);
    }

    #[test]
    fn tensors_start_aligned_and_chunks_cover_each_tensor_exactly() {
        let layout = Layout::new(&specs(&[1, 0, 5000, 64, 9000]), &[], &[], 4096).unwrap();
        for (t, tensor) in layout.tensors.iter().enumerate() {
            assert_eq!(tensor.offset % TENSOR_ALIGN_ELEMS, 0);
            let covered: u64 = layout.pieces(t).iter().map(|p| p.len).sum();
            assert_eq!(covered, tensor.numel);
            let [first, count] = layout.ranges[t];
            let mut chunk_elems = 0;
            for g in first..first + count {
                let c = *layout
                    .chunks
                    .iter()
                    .flatten()
                    .find(|c| c.partial == g)
                    .unwrap();
                assert_eq!(c.tensor as usize, t);
                assert_eq!(c.start % 4, 0);
                assert!(c.len <= CHUNK_ELEMS);
                chunk_elems += u64::from(c.len);
            }
            assert_eq!(chunk_elems, tensor.numel);
        }
    }

    #[test]
    fn big_chunks_come_first_and_small_tensors_fold_serially() {
        let layout = Layout::new(&specs(&[10, 40_000, 3, 2048, 2049]), &[], &[], 1 << 20).unwrap();
        let table = &layout.chunks[0];
        assert!(table.windows(2).all(|w| w[0].class() <= w[1].class()));
        // 40000 = 16384 + 16384 + 7232; 10, 3 and 2048 are small; 7232 and 2049 are mid.
        assert_eq!(layout.class_counts[0], [2, 2, 3]);
        let mut partials: Vec<u32> = table.iter().map(|c| c.partial).collect();
        partials.sort();
        assert_eq!(partials, (0..layout.total_chunks).collect::<Vec<_>>());
        assert!(
            layout.big_tensors.is_empty(),
            "no tensor has more than 4 chunks"
        );
        let huge = Layout::new(&specs(&[5 * 16384 + 1, 1]), &[], &[], 1 << 20).unwrap();
        assert_eq!(huge.big_tensors, vec![0]);
    }

    /// Sets past 2^31 and 2^32 elements (issue 31: 3·2^30 failed on an H200): slabs of
    /// a GPU's size (2^30 elements, 4 GiB each) and of lavapipe's (128 MiB), every chunk
    /// inside its slab with u32 starts and lengths, every tensor covered exactly once,
    /// partial indices unique and below the total, nothing wrapped.
    #[test]
    fn sets_past_2_pow_31_and_2_pow_32_elements_lay_out_exactly() {
        let g = 1usize << 30;
        for (sizes, slab) in [
            (vec![3 * g], 1u64 << 30),
            (vec![g + 17, 2 * g - 5, 12_289, 2 * g + 3], 1 << 30),
            (vec![3 * g], 1 << 25),
        ] {
            let layout = Layout::new(&specs(&sizes), &[], &[], slab).unwrap();
            let total: u64 = sizes.iter().map(|&n| n as u64).sum();
            assert!(total > 1 << 31);
            assert_eq!(layout.numel(), total);
            let mut partials = vec![false; layout.total_chunks as usize];
            let mut covered = vec![0u64; sizes.len()];
            for (s, table) in layout.chunks.iter().enumerate() {
                assert!(layout.slabs[s].len <= slab && layout.slabs[s].len < 1 << 32);
                for c in table {
                    assert!(u64::from(c.start) + u64::from(c.len) <= layout.slabs[s].len);
                    assert!(!std::mem::replace(&mut partials[c.partial as usize], true));
                    covered[c.tensor as usize] += u64::from(c.len);
                }
            }
            assert!(partials.iter().all(|&p| p), "every partial written once");
            let want: Vec<u64> = sizes.iter().map(|&n| n as u64).collect();
            assert_eq!(covered, want);
            for (t, info) in layout.tensors.iter().enumerate() {
                let pieces: u64 = layout.pieces(t).iter().map(|p| p.len).sum();
                assert_eq!(pieces, info.numel);
                let [first, count] = layout.ranges[t];
                assert!(u64::from(first) + u64::from(count) <= u64::from(layout.total_chunks));
            }
            let last = layout.slabs.last().unwrap();
            assert_eq!(
                last.base + last.len,
                layout.internal_len,
                "slab bases in u64"
            );
            assert!(layout.internal_len >= total);
        }
    }

    #[test]
    fn a_tensor_larger_than_a_slab_spans_slabs() {
        let layout = Layout::new(&specs(&[10_000]), &[], &[], 4096).unwrap();
        assert_eq!(layout.slabs.len(), 3);
        let pieces = layout.pieces(0);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[1].slab_offset, 0);
        assert_eq!(pieces[1].tensor_offset, 4096);
        assert_eq!(pieces[2].len, 10_000 - 8192);
    }

    #[test]
    fn a_tensor_crossing_slabs_starts_on_a_chunk_boundary() {
        let chunk = u64::from(CHUNK_ELEMS);
        // Slabs of two chunks: the second tensor would cross the first boundary at its
        // element 2·chunk − 1024; it moves to the next chunk boundary instead.
        let layout =
            Layout::new(&specs(&[1000, 3 * chunk as usize + 5]), &[], &[], 2 * chunk).unwrap();
        assert_eq!(layout.tensors[1].offset, chunk);
        for piece in layout.pieces(1) {
            assert_eq!(piece.tensor_offset % chunk, 0, "{piece:?}");
        }
        let lens: Vec<u32> = layout
            .chunks
            .iter()
            .flatten()
            .filter(|c| c.tensor == 1)
            .map(|c| c.len)
            .collect();
        assert_eq!(lens, vec![CHUNK_ELEMS, CHUNK_ELEMS, CHUNK_ELEMS, 5]);
        // A tensor that fits, or slabs that are no multiple of a chunk: no padding.
        let fits = Layout::new(&specs(&[1000, 5000]), &[], &[], 2 * chunk).unwrap();
        assert_eq!(fits.tensors[1].offset, 1024);
        let odd = Layout::new(&specs(&[1000, 10_000]), &[], &[], 4096).unwrap();
        assert_eq!(odd.tensors[1].offset, 1024);
        assert_eq!(odd.internal_len, 11_072);
    }

    #[test]
    fn duplicate_names_and_empty_sets_are_errors() {
        let dup = vec![TensorSpec::new("a", [1]), TensorSpec::new("a", [2])];
        assert!(matches!(
            Layout::new(&dup, &[], &[], 4096),
            Err(Error::DuplicateTensorName(n)) if n == "a"
        ));
        assert!(matches!(
            Layout::new(&[], &[], &[], 4096),
            Err(Error::EmptyParamSet)
        ));
    }

    #[test]
    fn external_tensors_get_their_own_slab() {
        let layout =
            Layout::new(&specs(&[3]), &[TensorSpec::new("x", [7])], &[vec![0]], 4096).unwrap();
        assert_eq!(layout.slabs.len(), 2);
        assert_eq!(layout.slabs[1].pool, Some(vec![1]));
        assert_eq!(layout.slabs[1].len, 64);
        assert_eq!(layout.pieces(1)[0].slab, 1);
    }

    #[test]
    fn a_pool_is_one_slab_in_pool_order_and_empty_externals_get_none() {
        let external: Vec<TensorSpec> = [100, 0, 7, 64]
            .iter()
            .enumerate()
            .map(|(i, &n)| TensorSpec::new(format!("x{i}"), [n]))
            .collect();
        let layout = Layout::new(&specs(&[3]), &external, &[vec![2, 0], vec![3]], 4096).unwrap();
        assert_eq!(layout.slabs.len(), 3);
        // Pool 0 holds external 2 (tensor 3) then external 0 (tensor 1).
        assert_eq!(layout.slabs[1].pool, Some(vec![3, 1]));
        assert_eq!(layout.slabs[1].len, 64 + 128);
        assert_eq!(layout.tensors[3].offset, 64);
        assert_eq!(layout.tensors[1].offset, 128);
        assert_eq!(layout.pool_pos[1], 1);
        assert_eq!(layout.slabs[2].pool, Some(vec![4]));
        assert!(layout.pieces(2).is_empty());
        // Chunks cover each external tensor exactly.
        let chunked: u64 = layout.chunks[1].iter().map(|c| u64::from(c.len)).sum();
        assert_eq!(chunked, 107);
    }

    /// Tensors of three element types, interleaved: each type packed in its own slabs (f32,
    /// bf16, f16), in the given order within a type, every slab of one type, and every
    /// tensor covered exactly once.
    #[test]
    fn each_element_type_gets_its_own_slabs() {
        let dtypes = [Dtype::Bf16, Dtype::F32, Dtype::F16, Dtype::F32, Dtype::Bf16];
        let specs: Vec<TensorSpec> = specs(&[100, 5000, 3, 1, 9000])
            .into_iter()
            .zip(dtypes)
            .map(|(s, d)| s.with_dtype(d))
            .collect();
        let layout = Layout::with_dtype(&specs, &[], &[], 4096, Dtype::F32).unwrap();
        let types: Vec<Dtype> = layout.tensors.iter().map(|t| t.dtype).collect();
        assert_eq!(types, dtypes);
        let offsets: Vec<u64> = layout.tensors.iter().map(|t| t.offset).collect();
        // f32 first (5000 → 5056, 1 → 64), then bf16 (100 → 128; 9000, which crosses a
        // slab boundary, on the next multiple of 256 of the run, 256), then f16.
        assert_eq!(offsets, [5120, 0, 5120 + 256 + 9024, 5056, 5120 + 256]);
        for (t, &dtype) in dtypes.iter().enumerate() {
            let pieces = layout.pieces(t);
            assert_eq!(
                pieces.iter().map(|p| p.len).sum::<u64>(),
                layout.tensors[t].numel
            );
            for p in pieces {
                assert_eq!(layout.slabs[p.slab].dtype, dtype, "tensor {t}");
            }
        }
        let lens: Vec<(u64, u64, Dtype)> = layout
            .slabs
            .iter()
            .map(|s| (s.base, s.len, s.dtype))
            .collect();
        assert_eq!(
            lens,
            [
                (0, 4096, Dtype::F32),
                (4096, 1024, Dtype::F32),
                (5120, 4096, Dtype::Bf16),
                (9216, 4096, Dtype::Bf16),
                (13312, 1088, Dtype::Bf16),
                (14400, 64, Dtype::F16),
            ]
        );
        assert_eq!(layout.internal_len, 14464);
    }
}
