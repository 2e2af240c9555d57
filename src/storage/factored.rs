//! Adafactor's states on the device, and the tables its kernels walk
//! (`crate::kernels::factor`, `shaders/factor_*.wgsl`, `shaders/rules/adafactor*.wgsl`).
//!
//! A tensor of two or more dimensions `[…, R, C]` (B = ∏… matrices) keeps `B·R` row
//! values and `B·C` column values, each kind in one set-wide f32 buffer (slot 0 `row_var`,
//! slot 1 `col_var`), so a matrix that spans two slabs has one place: every slab binds the
//! whole buffer. A scalar or vector keeps one value per element (slot 2 `variance`), as a
//! sparse state does (`crate::storage::arena::sparse_state_arena`): per slab, the blocks of
//! its vectors only ([`variance_blocks`]), so no buffer outgrows a slab's binding. The host sees a slot as the optimizer's other states are seen, one value per
//! element (`reference::adafactor_broadcast`): a matrix's element `(b, i, j)` holds
//! `row_var[b, i]` in slot 0 and `col_var[b, j]` in slot 1, a vector's its `variance` in
//! slot 2, the other slots 0.
//!
//! The row and column sums of `g²` are reduced in tiles of [`TILE_ROWS`]×[`TILE_COLS`]
//! elements: a tile's part in one slab is a **piece**, a workgroup of
//! `factor_partials.wgsl` that writes `TILE_ROWS` row sums and `TILE_COLS` column sums
//! ([`PIECE_FLOATS`](crate::kernels::abi::PIECE_FLOATS); the tables' structs and
//! constants are shared with WGSL from `crate::kernels::abi`). A **line** (64 rows or 64
//! columns of one matrix) then folds its pieces' partials in a fixed order (`factor_fold.wgsl`), and a **batch** (one matrix)
//! the mean of its rows (`factor_means.wgsl`): deterministic, and O(slabs) dispatches.

use std::collections::BTreeMap;

use crate::device::context::Gpu;
use crate::error::{Error, Result};
use crate::kernels::abi::{
    FactorBatch, FactorLine, FactorPiece, FactorTensor, TILE_COLS, TILE_ROWS,
};
use crate::reference::{broadcast_cols, broadcast_rows, compact_cols, compact_rows, factored_dims};
use crate::storage::arena::{whole_binding, Arena, UNKEPT};
use crate::storage::layout::Layout;

/// Rows or columns a line folds (a workgroup of 64 invocations).
const LINE: u32 = 64;

/// The layout of an Adafactor optimizer's states and the tables of its reductions.
pub(crate) struct FactorLayout {
    /// Per tensor of the set, in order.
    pub tensors: Vec<FactorTensor>,
    /// Per slab, its pieces.
    pub pieces: Vec<Vec<FactorPiece>>,
    /// Every line of every matrix.
    pub lines: Vec<FactorLine>,
    /// The pieces of each line, in fold order (global piece slots).
    pub line_pieces: Vec<u32>,
    /// Every matrix of every tensor.
    pub batches: Vec<FactorBatch>,
    /// Elements of the factored slots' buffers: `row_var`, `col_var`.
    pub slot_len: [u64; 2],
    /// Row means (one per matrix).
    pub means_len: u64,
    /// Pieces in all slabs.
    pub piece_count: u32,
}

impl FactorLayout {
    /// The layout for `layout`'s tensors, tensor `t` in parameter group `group_of[t]`;
    /// [`Error::NotSupported`] for a matrix with 2^30 rows or columns or more (the kernels'
    /// division by them runs in f32 with signed corrections).
    pub(crate) fn new(layout: &Layout, group_of: &[u32]) -> Result<FactorLayout> {
        for info in &layout.tensors {
            if let Some((_, r, c)) = factored_dims(&info.shape) {
                if r.max(c) >= 1 << 30 {
                    return Err(Error::NotSupported(format!(
                        "Adafactor on tensor {:?} of shape {:?}: a factored dimension of 2^30 \
                         or more (reshape it)",
                        info.name, info.shape
                    )));
                }
            }
        }
        let mut tensors = Vec::with_capacity(layout.tensors.len());
        let (mut rows_len, mut cols_len, mut means_len) = (0u64, 0u64, 0u64);
        for (info, &group) in layout.tensors.iter().zip(group_of) {
            let mut t = FactorTensor {
                group,
                offset: info.offset as u32,
                numel: info.numel as u32,
                row_base: rows_len as u32,
                col_base: cols_len as u32,
                mean_base: means_len as u32,
                ..Default::default()
            };
            if let Some((b, r, c)) = factored_dims(&info.shape) {
                (t.rows, t.cols) = (r as u32, c as u32);
                rows_len += (b * r) as u64;
                cols_len += (b * c) as u64;
                means_len += b as u64;
            }
            tensors.push(t);
        }
        let mut pieces: Vec<Vec<FactorPiece>> = vec![Vec::new(); layout.slabs.len()];
        // (tensor, matrix, tile row, tile column) → its pieces' slots, in slab order.
        let mut of_tile: BTreeMap<(usize, u32, u32, u32), Vec<u32>> = BTreeMap::new();
        let mut slot = 0u32;
        for (s, slab) in layout.slabs.iter().enumerate() {
            for (t, info) in layout.tensors.iter().enumerate() {
                let ft = tensors[t];
                let (start, end) = (info.offset, info.offset + info.numel);
                let (lo, hi) = (start.max(slab.base), end.min(slab.base + slab.len));
                if ft.cols == 0 || lo >= hi {
                    continue;
                }
                let (lo, hi) = (lo - start, hi - start);
                let (r, c) = (u64::from(ft.rows), u64::from(ft.cols));
                let batch = info.numel / (r * c);
                for b in 0..batch as u32 {
                    for ti in 0..ft.rows.div_ceil(TILE_ROWS) {
                        for tj in 0..ft.cols.div_ceil(TILE_COLS) {
                            let row0 = u64::from(b) * r + u64::from(ti * TILE_ROWS);
                            let col0 = u64::from(tj * TILE_COLS);
                            let rows = (ft.rows - ti * TILE_ROWS).min(TILE_ROWS);
                            let cols = (ft.cols - tj * TILE_COLS).min(TILE_COLS);
                            let first = row0 * c + col0;
                            let last =
                                (row0 + u64::from(rows) - 1) * c + col0 + u64::from(cols) - 1;
                            if first >= hi || last < lo {
                                continue;
                            }
                            pieces[s].push(FactorPiece {
                                tensor: t as u32,
                                row0: row0 as u32,
                                col0: col0 as u32,
                                rows,
                                cols,
                                lo: lo as u32,
                                hi: hi as u32,
                                slot,
                            });
                            of_tile.entry((t, b, ti, tj)).or_default().push(slot);
                            slot += 1;
                        }
                    }
                }
            }
        }
        let (mut lines, mut line_pieces, mut batches) = (Vec::new(), Vec::new(), Vec::new());
        for (t, info) in layout.tensors.iter().enumerate() {
            let ft = tensors[t];
            if ft.cols == 0 || info.numel == 0 {
                continue;
            }
            let batch = (info.numel / u64::from(ft.rows * ft.cols)) as u32;
            let tiles =
                |b: u32, ti: u32, tj: u32| of_tile.get(&(t, b, ti, tj)).into_iter().flatten();
            let (tile_rows, tile_cols) = (ft.rows.div_ceil(TILE_ROWS), ft.cols.div_ceil(TILE_COLS));
            for b in 0..batch {
                for ti in 0..tile_rows {
                    for half in 0..TILE_ROWS / LINE {
                        let r0 = ti * TILE_ROWS + half * LINE;
                        if r0 >= ft.rows {
                            break;
                        }
                        let start = line_pieces.len() as u32;
                        line_pieces.extend((0..tile_cols).flat_map(|tj| tiles(b, ti, tj)));
                        lines.push(FactorLine {
                            tensor: t as u32,
                            first: ft.row_base + b * ft.rows + r0,
                            count: (ft.rows - r0).min(LINE),
                            part: half * LINE,
                            start,
                            pieces: line_pieces.len() as u32 - start,
                            is_col: 0,
                            divisor: ft.cols,
                        });
                    }
                }
                for tj in 0..tile_cols {
                    let start = line_pieces.len() as u32;
                    line_pieces.extend((0..tile_rows).flat_map(|ti| tiles(b, ti, tj)));
                    lines.push(FactorLine {
                        tensor: t as u32,
                        first: ft.col_base + b * ft.cols + tj * TILE_COLS,
                        count: (ft.cols - tj * TILE_COLS).min(TILE_COLS),
                        part: TILE_ROWS,
                        start,
                        pieces: line_pieces.len() as u32 - start,
                        is_col: 1,
                        divisor: ft.rows,
                    });
                }
                batches.push(FactorBatch {
                    tensor: t as u32,
                    row_first: ft.row_base + b * ft.rows,
                    rows: ft.rows,
                    mean: ft.mean_base + b,
                });
            }
        }
        Ok(FactorLayout {
            tensors,
            pieces,
            lines,
            line_pieces,
            batches,
            slot_len: [rows_len, cols_len],
            means_len,
            piece_count: slot,
        })
    }

    /// Per slab, the `SHAPE_FACTOR_*` bits of the kinds of tensor it holds (the kernels
    /// compile the other kinds' paths out).
    pub(crate) fn slab_kinds(&self, layout: &Layout) -> Vec<u32> {
        use crate::kernels::shaders::{
            SHAPE_FACTOR_MATRICES, SHAPE_FACTOR_UNALIGNED, SHAPE_FACTOR_VECTORS,
        };
        let mut kinds = vec![0u32; layout.slabs.len()];
        for (t, ft) in self.tensors.iter().enumerate() {
            let kind = match ft.cols {
                0 => SHAPE_FACTOR_VECTORS,
                c if c % 4 == 0 => SHAPE_FACTOR_MATRICES,
                _ => SHAPE_FACTOR_UNALIGNED,
            };
            for piece in layout.pieces(t) {
                kinds[piece.slab] |= kind;
            }
        }
        kinds
    }

    /// Factored slot `slot`'s buffer (0 `row_var`, 1 `col_var`), zeroed, bound whole by
    /// every slab.
    pub(crate) fn state_arena(
        &self, gpu: &Gpu, layout: &Layout, slot: usize, label: &str,
    ) -> Arena {
        let binding = whole_binding(gpu, label, self.slot_len[slot] * 4);
        Arena::Gpu(vec![binding; layout.slabs.len()])
    }

    /// Factored slot `slot`'s per-element image (all tensors concatenated in the set's
    /// order) from its buffer's values `compact`: 0 for the vectors.
    pub(crate) fn image(&self, layout: &Layout, slot: usize, compact: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; layout.numel() as usize];
        let mut at = 0usize;
        for (info, ft) in layout.tensors.iter().zip(&self.tensors) {
            let n = info.numel as usize;
            let image = &mut out[at..at + n];
            at += n;
            let (rows, cols) = (ft.rows as usize, ft.cols as usize);
            match (slot, ft.cols) {
                (_, 0) => {}
                (0, _) => broadcast_rows(&compact[ft.row_base as usize..], image, cols),
                _ => {
                    let batch = n / (rows * cols).max(1);
                    let values = &compact[ft.col_base as usize..][..batch * cols];
                    broadcast_cols(values, image, batch, rows, cols);
                }
            }
        }
        out
    }

    /// Factored slot `slot`'s buffer values from its per-element image `values` (all
    /// tensors concatenated): each row's first element, each matrix's first row.
    pub(crate) fn compact(&self, layout: &Layout, slot: usize, values: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; self.slot_len[slot] as usize];
        let mut at = 0usize;
        for (info, ft) in layout.tensors.iter().zip(&self.tensors) {
            let n = info.numel as usize;
            let image = &values[at..at + n];
            at += n;
            let (rows, cols) = (ft.rows as usize, ft.cols as usize);
            if n == 0 {
                continue;
            }
            match (slot, ft.cols) {
                (_, 0) => {}
                (0, _) => {
                    let batch = n / (rows * cols);
                    let v = compact_rows(image, batch, rows, cols);
                    out[ft.row_base as usize..][..v.len()].copy_from_slice(&v);
                }
                _ => {
                    let batch = n / (rows * cols);
                    let v = compact_cols(image, batch, rows, cols);
                    out[ft.col_base as usize..][..v.len()].copy_from_slice(&v);
                }
            }
        }
        out
    }
}

/// Per slab, the place of each 64-element block in the `variance` buffer: the blocks of
/// the vectors and scalars numbered in order, `UNKEPT` for the matrices' and for blocks of
/// no tensor (the table a sparse state's arena and kernels read).
pub(crate) fn variance_blocks(layout: &Layout) -> Vec<Vec<u32>> {
    let vector = |t: usize| factored_dims(&layout.tensors[t].shape).is_none();
    let kept = layout.per_block(UNKEPT, |t| if vector(t) { 0 } else { UNKEPT });
    kept.into_iter()
        .map(|table| {
            let mut next = 0u32;
            table
                .into_iter()
                .map(|b| match b {
                    UNKEPT => UNKEPT,
                    _ => {
                        next += 1;
                        next - 1
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// `(n / d, n % d)` as `shaders/factored_estimate.wgsl` computes it without an integer
    /// division: a quotient from f32, refined once from its remainder, then corrected by one
    /// (WGSL's conversions saturate, its integer arithmetic wraps).
    fn divmod(n: u32, d: u32) -> (u32, u32) {
        let inv = 1.0 / d as f32;
        let mut q = (n as f32 * inv) as u32;
        let r0 = n.wrapping_sub(q.wrapping_mul(d)) as i32;
        q = (q as i32).wrapping_add((r0 as f32 * inv).floor() as i32) as u32;
        let mut r = n.wrapping_sub(q.wrapping_mul(d)) as i32;
        if r < 0 {
            q = q.wrapping_sub(1);
            r = r.wrapping_add(d as i32);
        }
        if r >= d as i32 {
            q = q.wrapping_add(1);
            r = r.wrapping_sub(d as i32);
        }
        (q, r as u32)
    }

    /// The shader's division equals `/` and `%` over the range a slab's elements and a
    /// matrix's rows span: every n below 2^32 by a stride, the edges, and divisors from 1
    /// to 2^30 − 1 (the largest factored dimension).
    #[test]
    fn divmod_is_exact() {
        let divisors = [
            1u32,
            2,
            3,
            7,
            64,
            67,
            1000,
            4095,
            4096,
            4097,
            65_537,
            1 << 20,
            (1 << 24) + 1,
            (1 << 30) - 1,
        ];
        for &d in &divisors {
            let mut n = 0u64;
            while n < 1 << 32 {
                let m = n as u32;
                assert_eq!(divmod(m, d), (m / d, m % d), "{m} / {d}");
                for k in [1u32, 2, 3] {
                    let e = m.wrapping_sub(k);
                    assert_eq!(divmod(e, d), (e / d, e % d), "{e} / {d}");
                }
                n += 999_983;
            }
            for m in [u32::MAX, u32::MAX - 1, d.wrapping_mul(3), d - 1, d] {
                assert_eq!(divmod(m, d), (m / d, m % d), "{m} / {d}");
            }
        }
    }
}
