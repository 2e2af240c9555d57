//! Storage: one array per slab layout (parameters, gradients, each optimizer state) as
//! device bindings or a host vector, the device copies of the layout, the caller's own
//! buffers as external tensors, and whole-set / per-tensor uploads and downloads.

use std::sync::Arc;

use crate::consts::{MIN_SLAB_BYTES, TENSOR_ALIGN_ELEMS};
use crate::device::context::{Context, Gpu};
use crate::device::gpu::{f32s, part};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::storage::layout::{Layout, Piece, SlabInfo, TensorSpec};

/// A range of a caller's buffer: `buffer[offset..]`, in bytes.
#[derive(Clone, Debug)]
pub struct BufferRange {
    /// The buffer; it needs `STORAGE` usage (and `COPY_DST`/`COPY_SRC` to upload/download).
    pub buffer: wgpu::Buffer,
    /// Byte offset, a multiple of the device's `min_storage_buffer_offset_alignment`.
    pub offset: u64,
}

/// A tensor whose parameters and gradients live in the caller's buffers. It costs one
/// dispatch per kernel (it is a slab of its own) but joins the same command buffer.
#[derive(Clone, Debug)]
pub struct ExternalTensor {
    /// Unique name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Where the parameters are.
    pub params: BufferRange,
    /// Where the gradients are.
    pub grads: BufferRange,
}

/// Bytes an external tensor of `numel` elements binds: whole vec4s.
pub(crate) fn range_bytes(numel: u64) -> u64 {
    (numel * 4).next_multiple_of(16)
}

/// Options of [`ParamSet::new`](crate::ParamSet::new).
#[derive(Clone, Debug, Default)]
pub struct ArenaOptions {
    /// Largest slab in bytes (`None`: the device's `max_storage_buffer_binding_size`).
    /// Forcing it small reaches the multi-slab paths with small data.
    pub max_slab_bytes: Option<u64>,
    /// Tensors in the caller's buffers.
    pub external: Vec<ExternalTensor>,
    /// The element type of the gradients and model parameters of every tensor whose spec
    /// names none ([`crate::TensorSpec::with_dtype`]). Default f32. External tensors are
    /// f32.
    pub dtype: Dtype,
    /// For 16-bit tensors: keep f32 master weights beside the 16-bit parameters. The
    /// optimizer then updates the master and writes its rounding into the 16-bit copy;
    /// without, it updates the 16-bit parameters in place (widen, update in f32, round).
    /// No effect on f32 tensors. [`ArenaOptions::mixed`] sets it.
    pub master_weights: bool,
}

impl ArenaOptions {
    /// Tensors of `dtype` (unless their spec names another) with f32 master weights (the
    /// usual mixed-precision configuration).
    pub fn mixed(dtype: Dtype) -> ArenaOptions {
        ArenaOptions {
            dtype,
            master_weights: true,
            ..ArenaOptions::default()
        }
    }
}

/// One contiguous piece of a tensor in a device buffer, for a caller's own kernels.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the piece (a multiple of 256 for tensors clipstep allocated).
    pub offset: u64,
    /// Elements in the piece.
    pub len: u64,
    /// Index of the piece's first element within the tensor.
    pub tensor_offset: u64,
}

/// A slab's binding: a whole internal buffer, or a caller's range.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    /// Bytes bound: the slab length rounded up to a whole vec4.
    pub size: u64,
    /// Bytes that belong to the slab (size without the vec4 round-up).
    pub data_size: u64,
    /// For a pool window (`crate::storage::pool`), each pool tensor's byte offset in the buffer, in
    /// pool order; `None` for a slab of clipstep's own, addressed by its virtual offsets.
    pub places: Option<Arc<[u64]>>,
    /// A sparse state's slab (kept by some parameter groups only): per 64-element block of
    /// the slab, its place among the blocks the buffer holds, or [`UNKEPT`]; `None`: the
    /// buffer holds every block.
    pub compact: Option<Arc<[u32]>>,
}

/// A [`Binding::compact`] entry: the block is not kept.
pub(crate) const UNKEPT: u32 = u32::MAX;

/// Elements per block of a slab (a tensor starts on one).
const BLOCK: u64 = TENSOR_ALIGN_ELEMS;

impl Binding {
    /// The byte offset in `buffer` of piece `p` of tensor `t`.
    pub(crate) fn piece_offset(&self, layout: &Layout, t: usize, p: &Piece) -> u64 {
        match &self.places {
            Some(offsets) => offsets[layout.pool_pos[t] as usize] + p.tensor_offset * 4,
            None => self.offset + self.element_at(p.slab_offset) * 4,
        }
    }

    /// Where element `slab_offset` of the slab's virtual space is in the buffer, in
    /// elements from [`Binding::offset`]: the same place, or in a sparse state its block's
    /// compact place (a piece lies in one tensor, whose blocks are kept one after the other,
    /// so it stays contiguous).
    pub(crate) fn element_at(&self, slab_offset: u64) -> u64 {
        match &self.compact {
            Some(compact) => {
                let block = u64::from(compact[(slab_offset / BLOCK) as usize]);
                block * BLOCK + slab_offset % BLOCK
            }
            None => slab_offset,
        }
    }

    /// Whether the buffer holds the block of element `slab_offset` (always, unless it is a
    /// sparse state's and the block's group does not keep the state).
    pub(crate) fn holds(&self, slab_offset: u64) -> bool {
        self.compact
            .as_ref()
            .is_none_or(|c| c[(slab_offset / BLOCK) as usize] != UNKEPT)
    }

    /// The ranges of slab `s` this binding holds data in, as `(first element in the slab's
    /// virtual space, byte offset in the buffer, bytes)`: one per tensor of a pool (never
    /// the caller's gaps between them), the whole binding otherwise.
    pub(crate) fn ranges(&self, layout: &Layout, s: usize) -> Vec<(usize, u64, u64)> {
        let slab = &layout.slabs[s];
        match (&self.places, &slab.pool) {
            (Some(offsets), Some(members)) => members
                .iter()
                .zip(offsets.iter())
                .map(|(&t, &at)| {
                    let tensor = &layout.tensors[t];
                    ((tensor.offset - slab.base) as usize, at, tensor.numel * 4)
                })
                .collect(),
            _ => match &self.compact {
                // A sparse state: each run of kept blocks.
                Some(compact) => {
                    let mut runs: Vec<(usize, u64, u64)> = Vec::new();
                    for (b, &at) in compact.iter().enumerate() {
                        if at == UNKEPT {
                            continue;
                        }
                        let first = b as u64 * BLOCK;
                        let bytes = (slab.len.min(first + BLOCK) - first) * 4;
                        match runs.last_mut() {
                            Some(run) if run.0 as u64 + run.2 / 4 == first => run.2 += bytes,
                            _ => runs.push((
                                first as usize,
                                self.offset + u64::from(at) * BLOCK * 4,
                                bytes,
                            )),
                        }
                    }
                    runs
                }
                None => vec![(0, self.offset, self.data_size)],
            },
        }
    }

    /// The slab's bytes as a binding.
    pub(crate) fn resource(&self) -> wgpu::BindingResource<'_> {
        part(&self.buffer, self.offset, self.size)
    }
}

/// One array per slab layout: parameters, gradients or an optimizer state.
pub(crate) enum Arena {
    Gpu(Vec<Binding>),
    /// The CPU reference holds the whole internal space in one vector.
    Cpu(Vec<f32>),
}

/// Elements per slab: the device's binding limit (or the caller's), floored to the
/// tensor alignment.
pub(crate) fn slab_capacity(limits: Option<&wgpu::Limits>, forced: Option<u64>) -> Result<u64> {
    if let Some(bytes) = forced {
        if bytes < MIN_SLAB_BYTES {
            return Err(Error::SlabTooSmall(bytes));
        }
    }
    let device_max = limits.map_or(u64::MAX, |l| {
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    });
    // The CPU reference has no binding limit; 1 GiB slabs keep the bookkeeping small.
    let bytes = forced.unwrap_or(device_max).min(device_max).min(1 << 30);
    let elems = (bytes / 4) / TENSOR_ALIGN_ELEMS * TENSOR_ALIGN_ELEMS;
    Ok(elems.max(TENSOR_ALIGN_ELEMS))
}

/// A buffer of clipstep's own for one slab, bound whole.
pub(crate) fn own_binding(gpu: &Gpu, label: &str, slab: &SlabInfo, dtype: Dtype) -> Binding {
    whole_binding(gpu, label, slab.len * dtype.size())
}

/// A new storage buffer holding `data_size` bytes (at least one vec4, whole vec4s), bound
/// whole.
pub(crate) fn whole_binding(gpu: &Gpu, label: &str, data_size: u64) -> Binding {
    let size = data_size.max(16).next_multiple_of(16);
    Binding {
        buffer: gpu.storage(label, size),
        offset: 0,
        size,
        data_size,
        places: None,
        compact: None,
    }
}

/// An arena of the same slab layout for optimizer state, all internal buffers.
pub(crate) fn state_arena(ctx: &Context, layout: &Layout, label: &str, dtype: Dtype) -> Arena {
    match ctx.gpu() {
        Some(gpu) => Arena::Gpu(
            layout
                .slabs
                .iter()
                .map(|slab| own_binding(gpu, label, slab, dtype))
                .collect(),
        ),
        None => Arena::Cpu(vec![0.0; layout.internal_len as usize]),
    }
}

/// An arena for a sparse optimizer state: per slab, a buffer of only the blocks its
/// `compact` table keeps (`optim::groups::compact_blocks`; at least one vec4), so a state
/// a group does not use costs its tensors no memory. The CPU reference keeps the whole
/// space (its tensors that do not keep the state are never read).
pub(crate) fn sparse_state_arena(
    ctx: &Context, layout: &Layout, label: &str, dtype: Dtype, compact: &[Vec<u32>],
) -> Arena {
    match ctx.gpu() {
        Some(gpu) => Arena::Gpu(
            compact
                .iter()
                .map(|table| {
                    let kept = table.iter().filter(|&&b| b != UNKEPT).count() as u64;
                    let data_size = kept * BLOCK * dtype.size();
                    let size = data_size.max(16).next_multiple_of(16);
                    Binding {
                        buffer: gpu.storage(label, size),
                        offset: 0,
                        size,
                        data_size,
                        places: None,
                        compact: Some(table.as_slice().into()),
                    }
                })
                .collect(),
        ),
        None => Arena::Cpu(vec![0.0; layout.internal_len as usize]),
    }
}

/// Checks the caller's buffers before anything is built: each range (size within the
/// binding limit, STORAGE usage, aligned, in bounds), each buffer bindable on this device
/// (live and of this Context's device; probed once per buffer, not per range), and no two
/// ranges overlapping (params or grads of any two tensors, or one tensor's params and
/// grads), since an overlap would update memory twice or let one tensor's upload rewrite
/// another's gradients. Params and grads may share a buffer.
pub(crate) fn validate_externals(gpu: &Gpu, externals: &[ExternalTensor]) -> Result<()> {
    let mut ranges = Vec::with_capacity(2 * externals.len());
    for e in externals {
        let bytes = validate_external(gpu, e)?;
        for (role, r) in [("params", &e.params), ("grads", &e.grads)] {
            ranges.push((&r.buffer, r.offset, r.offset + bytes, e.name.as_str(), role));
        }
    }
    // Sorted by buffer, then start: an overlap is a range starting before the furthest
    // end seen so far on the same buffer.
    ranges.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    let mut reach: Option<usize> = None;
    for (i, r) in ranges.iter().enumerate() {
        let same_buffer = i > 0 && ranges[i - 1].0 == r.0;
        if !same_buffer {
            // A new buffer: probe it once, through its first non-empty range.
            if r.2 > r.1 {
                gpu.probe(r.0, r.1, r.2 - r.1)
                    .map_err(|err| unusable(r.3, r.4, err))?;
            }
            reach = None;
        }
        if r.2 <= r.1 {
            continue;
        }
        if let Some(j) = reach {
            let a = &ranges[j];
            if r.1 < a.2 {
                return Err(Error::OverlappingExternal {
                    first: format!("{:?} ({})", a.3, a.4),
                    second: format!("{:?} ({})", r.3, r.4),
                    first_range: (a.1, a.2),
                    second_range: (r.1, r.2),
                });
            }
        }
        if reach.is_none_or(|j| r.2 > ranges[j].2) {
            reach = Some(i);
        }
    }
    Ok(())
}

fn unusable(tensor: &str, role: &'static str, err: Error) -> Error {
    Error::UnusableBuffer {
        tensor: tensor.to_string(),
        role,
        reason: match err {
            Error::Rejected(reason) => reason,
            other => other.to_string(),
        },
    }
}

/// Checks a transfer over `slabs` before it touches any buffer: every caller's slab has
/// `usage` (for the whole set, as [`check_usage`]), and the caller's slabs among `slabs`
/// are live buffers of this device ([`Gpu::probe`]): a copy into a destroyed buffer is
/// dropped silently by wgpu, so without the probe an upload would land in part.
pub(crate) fn check_transfer(
    gpu: &Gpu, layout: &Layout, bindings: &[Binding], slabs: impl IntoIterator<Item = usize>,
    usage: wgpu::BufferUsages, role: &'static str,
) -> Result<()> {
    check_usage(layout, bindings, usage, role)?;
    for s in slabs {
        if let Some(members) = &layout.slabs[s].pool {
            let b = &bindings[s];
            gpu.probe(&b.buffer, b.offset, b.size)
                .map_err(|err| unusable(&layout.tensors[members[0]].name, role, err))?;
        }
    }
    Ok(())
}

/// Checks one external tensor's ranges; returns the bytes each binds (whole vec4s).
fn validate_external(gpu: &Gpu, e: &ExternalTensor) -> Result<u64> {
    let numel = TensorSpec::new(e.name.clone(), e.shape.clone()).checked_len()?;
    let max_binding = gpu.limits.max_storage_buffer_binding_size;
    if numel * 4 > max_binding {
        return Err(Error::TooLarge {
            what: format!("external tensor {:?} (bytes)", e.name),
            size: numel * 4,
            limit: max_binding,
        });
    }
    for (role, r) in [("params", &e.params), ("grads", &e.grads)] {
        validate_range(gpu, &e.name, role, r, numel)?;
    }
    Ok(range_bytes(numel))
}

/// Checks one range of an external tensor of `numel` elements: STORAGE usage, an offset
/// on the device's storage alignment, whole vec4s within the buffer.
fn validate_range(
    gpu: &Gpu, tensor: &str, role: &'static str, r: &BufferRange, numel: u64,
) -> Result<()> {
    let alignment = gpu.limits.min_storage_buffer_offset_alignment;
    if !r.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
        return Err(Error::MissingUsage {
            tensor: tensor.to_string(),
            role,
            usage: "STORAGE",
        });
    }
    // Pool tables address whole vec4s: an offset must also be a multiple of 16 bytes
    // (every device's storage alignment is, in practice).
    if !r.offset.is_multiple_of(u64::from(alignment.max(16))) {
        return Err(Error::MisalignedOffset {
            tensor: tensor.to_string(),
            offset: r.offset,
            alignment: alignment.max(16),
        });
    }
    let end = r.offset.saturating_add(range_bytes(numel));
    if end > r.buffer.size() {
        return Err(Error::OutOfBounds {
            tensor: tensor.to_string(),
            offset: r.offset,
            end,
            size: r.buffer.size(),
        });
    }
    Ok(())
}

pub(crate) fn check_usage(
    layout: &Layout, bindings: &[Binding], usage: wgpu::BufferUsages, role: &'static str,
) -> Result<()> {
    for (s, slab) in layout.slabs.iter().enumerate() {
        if let Some(members) = &slab.pool {
            if !bindings[s].buffer.usage().contains(usage) {
                return Err(Error::MissingUsage {
                    tensor: layout.tensors[members[0]].name.clone(),
                    role,
                    usage: if usage == wgpu::BufferUsages::COPY_DST {
                        "COPY_DST"
                    } else {
                        "COPY_SRC"
                    },
                });
            }
        }
    }
    Ok(())
}

fn length_check(what: &str, expected: u64, got: usize) -> Result<()> {
    if expected == got as u64 {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what: what.to_string(),
            expected,
            got: got as u64,
        })
    }
}

/// Writes all tensors of `arena` from their concatenation.
pub(crate) fn write_all(
    gpu: Option<&Arc<Gpu>>, layout: &Layout, arena: &mut Arena, data: &[f32], role: &'static str,
) -> Result<()> {
    length_check(
        &format!("{role} of the whole set"),
        layout.numel(),
        data.len(),
    )?;
    match (gpu, arena) {
        (Some(gpu), Arena::Gpu(bindings)) => {
            let all = 0..bindings.len();
            check_transfer(
                gpu,
                layout,
                bindings,
                all,
                wgpu::BufferUsages::COPY_DST,
                role,
            )?;
            let images = slab_images(layout, data);
            gpu.upload(&image_writes(layout, bindings, &images))
        }
        (_, Arena::Cpu(v)) => {
            let mut src = 0usize;
            for t in &layout.tensors {
                let (o, n) = (t.offset as usize, t.numel as usize);
                v[o..o + n].copy_from_slice(&data[src..src + n]);
                src += n;
            }
            Ok(())
        }
        _ => unreachable!("arena kind always matches the context"),
    }
}

/// Every slab's contents for `data` (all tensors concatenated): a padded image per
/// internal slab (O(slabs) writes, not O(tensors)), the tensor itself per external slab.
pub(crate) fn slab_images(layout: &Layout, data: &[f32]) -> Vec<Vec<f32>> {
    let mut images: Vec<Vec<f32>> = layout
        .slabs
        .iter()
        .map(|s| vec![0.0; s.len as usize])
        .collect();
    let mut src = 0usize;
    for t in 0..layout.tensors.len() {
        let numel = layout.tensors[t].numel as usize;
        let tensor = &data[src..src + numel];
        for p in layout.pieces(t) {
            let part = &tensor[p.tensor_offset as usize..(p.tensor_offset + p.len) as usize];
            let at = p.slab_offset as usize;
            images[p.slab][at..at + part.len()].copy_from_slice(part);
        }
        src += numel;
    }
    images
}

/// Every tensor's values from slab images (the inverse of [`slab_images`]), concatenated
/// in the set's order.
pub(crate) fn tensor_values(layout: &Layout, images: &[Vec<f32>]) -> Vec<f32> {
    let mut out = Vec::with_capacity(layout.numel() as usize);
    for t in 0..layout.tensors.len() {
        for p in layout.pieces(t) {
            let at = p.slab_offset as usize;
            out.extend_from_slice(&images[p.slab][at..at + p.len as usize]);
        }
    }
    out
}

/// The writes that put `images` (from [`slab_images`]) into `bindings`: one per slab of
/// clipstep's own, one per tensor of a pool (the gaps between a pool's tensors are the
/// caller's and are never written).
pub(crate) fn image_writes<'a>(
    layout: &Layout, bindings: &'a [Binding], images: &'a [Vec<f32>],
) -> Vec<(&'a wgpu::Buffer, u64, &'a [u8])> {
    let mut writes = Vec::with_capacity(bindings.len());
    for (s, (b, image)) in bindings.iter().zip(images).enumerate() {
        for (from, at, bytes) in b.ranges(layout, s) {
            let part = &image[from..from + (bytes / 4) as usize];
            writes.push((&b.buffer, at, bytemuck::cast_slice(part)));
        }
    }
    writes
}

/// The pieces of tensor `t`, after [`check_transfer`] over the slabs they lie in.
fn checked_pieces(
    gpu: &Gpu, layout: &Layout, bindings: &[Binding], t: usize, usage: wgpu::BufferUsages,
    role: &'static str,
) -> Result<Vec<Piece>> {
    let pieces = layout.pieces(t);
    let slabs = pieces.iter().map(|p| p.slab);
    check_transfer(gpu, layout, bindings, slabs, usage, role)?;
    Ok(pieces)
}

/// Writes tensor `t` of `arena`.
pub(crate) fn write_tensor(
    gpu: Option<&Arc<Gpu>>, layout: &Layout, arena: &mut Arena, t: usize, data: &[f32],
    role: &'static str,
) -> Result<()> {
    let info = &layout.tensors[t];
    length_check(
        &format!("{role} of tensor {:?}", info.name),
        info.numel,
        data.len(),
    )?;
    match (gpu, arena) {
        (Some(gpu), Arena::Gpu(bindings)) => {
            let pieces =
                checked_pieces(gpu, layout, bindings, t, wgpu::BufferUsages::COPY_DST, role)?;
            let writes: Vec<_> = pieces
                .iter()
                .map(|p| {
                    let b = &bindings[p.slab];
                    let part = &data[p.tensor_offset as usize..(p.tensor_offset + p.len) as usize];
                    (
                        &b.buffer,
                        b.piece_offset(layout, t, p),
                        bytemuck::cast_slice(part),
                    )
                })
                .collect();
            gpu.upload(&writes)
        }
        (_, Arena::Cpu(v)) => {
            let o = info.offset as usize;
            v[o..o + data.len()].copy_from_slice(data);
            Ok(())
        }
        _ => unreachable!("arena kind always matches the context"),
    }
}

/// Reads every slab of `arena` in one submission; returns per-slab host images in the
/// virtual space (a pool's tensors read one by one, its gaps left zero).
fn read_slabs(
    gpu: &Gpu, layout: &Layout, bindings: &[Binding], role: &'static str,
) -> Result<Vec<Vec<f32>>> {
    let all = 0..bindings.len();
    check_transfer(
        gpu,
        layout,
        bindings,
        all,
        wgpu::BufferUsages::COPY_SRC,
        role,
    )?;
    let per_slab: Vec<Vec<(usize, u64, u64)>> = bindings
        .iter()
        .enumerate()
        .map(|(s, b)| b.ranges(layout, s))
        .collect();
    let ranges: Vec<_> = bindings
        .iter()
        .zip(&per_slab)
        .flat_map(|(b, rs)| rs.iter().map(move |&(_, at, bytes)| (&b.buffer, at, bytes)))
        .collect();
    let all = f32s(&gpu.read_blocking(&ranges)?);
    let mut at = 0usize;
    Ok(per_slab
        .iter()
        .enumerate()
        .map(|(s, rs)| {
            let slab = &layout.slabs[s];
            let mut image = vec![0.0; slab.len as usize];
            for &(to, _, bytes) in rs {
                let n = (bytes / 4) as usize;
                image[to..to + n].copy_from_slice(&all[at..at + n]);
                at += n;
            }
            image
        })
        .collect())
}

/// All tensors of `arena`, concatenated in order.
pub(crate) fn read_all(
    gpu: Option<&Arc<Gpu>>, layout: &Layout, arena: &Arena, role: &'static str,
) -> Result<Vec<f32>> {
    match (gpu, arena) {
        (Some(gpu), Arena::Gpu(bindings)) => Ok(tensor_values(
            layout,
            &read_slabs(gpu, layout, bindings, role)?,
        )),
        (_, Arena::Cpu(v)) => {
            let mut out = Vec::with_capacity(layout.numel() as usize);
            for t in &layout.tensors {
                out.extend_from_slice(&v[t.offset as usize..(t.offset + t.numel) as usize]);
            }
            Ok(out)
        }
        _ => unreachable!("arena kind always matches the context"),
    }
}

/// Tensor `t` of `arena`.
pub(crate) fn read_tensor(
    gpu: Option<&Arc<Gpu>>, layout: &Layout, arena: &Arena, t: usize, role: &'static str,
) -> Result<Vec<f32>> {
    let info = &layout.tensors[t];
    match (gpu, arena) {
        (Some(gpu), Arena::Gpu(bindings)) => {
            let pieces =
                checked_pieces(gpu, layout, bindings, t, wgpu::BufferUsages::COPY_SRC, role)?;
            let ranges: Vec<_> = pieces
                .iter()
                .map(|p| {
                    let b = &bindings[p.slab];
                    (&b.buffer, b.piece_offset(layout, t, p), p.len * 4)
                })
                .collect();
            Ok(f32s(&gpu.read_blocking(&ranges)?))
        }
        (_, Arena::Cpu(v)) => {
            Ok(v[info.offset as usize..(info.offset + info.numel) as usize].to_vec())
        }
        _ => unreachable!("arena kind always matches the context"),
    }
}
