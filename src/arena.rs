//! Storage: one array per slab layout (parameters, gradients, each optimizer state) as
//! device bindings or a host vector, the device copies of the layout, the caller's own
//! buffers as external tensors, and whole-set / per-tensor uploads and downloads.

use std::sync::Arc;

use crate::abi::Slab;
use crate::consts::{MIN_SLAB_BYTES, TENSOR_ALIGN_ELEMS};
use crate::context::{Context, Gpu};
use crate::error::{Error, Result};
use crate::gpu::f32s;
use crate::layout::{Layout, Piece, SlabInfo, TensorSpec};

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

/// Options of [`ParamSet::new`](crate::ParamSet::new).
#[derive(Clone, Debug, Default)]
pub struct ArenaOptions {
    /// Largest slab in bytes (`None`: the device's `max_storage_buffer_binding_size`).
    /// Forcing it small reaches the multi-slab paths with small data.
    pub max_slab_bytes: Option<u64>,
    /// Tensors in the caller's buffers.
    pub external: Vec<ExternalTensor>,
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
}

impl Binding {
    pub(crate) fn resource(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size),
        })
    }
}

/// One array per slab layout: parameters, gradients or an optimizer state.
pub(crate) enum Arena {
    Gpu(Vec<Binding>),
    /// The CPU reference holds the whole internal space in one vector.
    Cpu(Vec<f32>),
}

/// Device copies of the layout: per slab its chunk table and `Slab` uniform, and the
/// per-tensor chunk ranges.
pub(crate) struct SlabTables {
    pub chunks: Vec<wgpu::Buffer>,
    pub slab_uniforms: Vec<wgpu::Buffer>,
    pub ranges: wgpu::Buffer,
    pub big_tensors: wgpu::Buffer,
}

impl SlabTables {
    pub(crate) fn new(gpu: &Gpu, layout: &Layout) -> SlabTables {
        let chunks = layout
            .chunks
            .iter()
            .map(|table| {
                let b = gpu.storage("chunk table", (table.len() * 16) as u64);
                gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(table));
                b
            })
            .collect();
        let slab_uniforms = layout
            .slabs
            .iter()
            .enumerate()
            .map(|(s, slab)| {
                let u = Slab {
                    len: slab.len as u32,
                    num_big: layout.class_counts[s][0],
                    num_mid: layout.class_counts[s][1],
                    num_chunks: layout.chunks[s].len() as u32,
                };
                gpu.uniform("slab", bytemuck::bytes_of(&u))
            })
            .collect();
        let ranges = gpu.storage("tensor chunk ranges", (layout.ranges.len() * 8) as u64);
        gpu.queue
            .write_buffer(&ranges, 0, bytemuck::cast_slice(&layout.ranges));
        let big_tensors = gpu.storage("big tensors", (layout.big_tensors.len() * 4) as u64);
        gpu.queue
            .write_buffer(&big_tensors, 0, bytemuck::cast_slice(&layout.big_tensors));
        SlabTables {
            chunks,
            slab_uniforms,
            ranges,
            big_tensors,
        }
    }
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

/// Allocates one buffer per internal slab, or binds the caller's range for external ones.
pub(crate) fn slab_bindings(
    gpu: &Gpu,
    layout: &Layout,
    label: &str,
    options: &ArenaOptions,
    range: impl Fn(&ExternalTensor) -> &BufferRange,
) -> Vec<Binding> {
    layout
        .slabs
        .iter()
        .map(|slab| {
            let data_size = slab.len * 4;
            let size = data_size.next_multiple_of(16);
            match slab.external {
                Some(k) => {
                    let r = range(&options.external[k]);
                    Binding {
                        buffer: r.buffer.clone(),
                        offset: r.offset,
                        size,
                        data_size,
                    }
                }
                None => own_binding(gpu, label, slab),
            }
        })
        .collect()
}

/// A buffer of clipstep's own for one slab, bound whole.
fn own_binding(gpu: &Gpu, label: &str, slab: &SlabInfo) -> Binding {
    let data_size = slab.len * 4;
    let size = data_size.next_multiple_of(16);
    Binding {
        buffer: gpu.storage(label, size),
        offset: 0,
        size,
        data_size,
    }
}

/// An arena of the same slab layout for optimizer state, all internal buffers.
pub(crate) fn state_arena(ctx: &Context, layout: &Layout, label: &str) -> Arena {
    match ctx.gpu() {
        Some(gpu) => Arena::Gpu(
            layout
                .slabs
                .iter()
                .map(|slab| own_binding(gpu, label, slab))
                .collect(),
        ),
        None => Arena::Cpu(vec![0.0; layout.internal_len as usize]),
    }
}

/// Checks the caller's buffers before anything is built: each range (size within the
/// binding limit, STORAGE usage, aligned, in bounds, bindable on this device: live and of
/// this Context's device), and no two ranges overlapping (params or grads of any two
/// tensors, or one tensor's params and grads), since an overlap would update memory twice
/// or let one tensor's upload rewrite another's gradients.
pub(crate) fn validate_externals(gpu: &Gpu, externals: &[ExternalTensor]) -> Result<()> {
    let mut ranges = Vec::with_capacity(2 * externals.len());
    for e in externals {
        let bytes = validate_external(gpu, e)?;
        for (role, r) in [("params", &e.params), ("grads", &e.grads)] {
            probe_binding(gpu, e, role, r, bytes)?;
            ranges.push((&r.buffer, r.offset, r.offset + bytes, e.name.as_str(), role));
        }
    }
    // Sorted by buffer, then start: an overlap is a range starting before the furthest
    // end seen so far on the same buffer.
    ranges.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    for pair in ranges.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.0 == b.0 && b.1 < a.2 && a.2 > a.1 && b.2 > b.1 {
            return Err(Error::OverlappingExternal {
                first: format!("{:?} ({})", a.3, a.4),
                second: format!("{:?} ({})", b.3, b.4),
                first_range: (a.1, a.2),
                second_range: (b.1, b.2),
            });
        }
    }
    Ok(())
}

/// Binds `r` alone: a destroyed buffer, or one of another device, is
/// [`Error::UnusableBuffer`] here rather than a wrong binding later.
fn probe_binding(
    gpu: &Gpu,
    e: &ExternalTensor,
    role: &'static str,
    r: &BufferRange,
    bytes: u64,
) -> Result<()> {
    gpu.probe(&r.buffer, r.offset, bytes)
        .map_err(|err| unusable(&e.name, role, err))
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

/// Checks a transfer over `slabs` before it touches any buffer: every external slab has
/// `usage` (for the whole set, as [`check_usage`]), and the external slabs among `slabs`
/// are live buffers of this device ([`Gpu::probe`]): a copy into a destroyed buffer is
/// dropped silently by wgpu, so without the probe an upload would land in part.
pub(crate) fn check_transfer(
    gpu: &Gpu,
    layout: &Layout,
    bindings: &[Binding],
    slabs: impl IntoIterator<Item = usize>,
    usage: wgpu::BufferUsages,
    role: &'static str,
) -> Result<()> {
    check_usage(layout, bindings, usage, role)?;
    for s in slabs {
        if let Some(k) = layout.slabs[s].external {
            let b = &bindings[s];
            gpu.probe(&b.buffer, b.offset, b.size)
                .map_err(|err| unusable(&external_name(layout, k), role, err))?;
        }
    }
    Ok(())
}

/// The name of external tensor `k`.
fn external_name(layout: &Layout, k: usize) -> String {
    let tensor = layout.tensors.iter().filter(|t| t.external).nth(k);
    tensor.map_or_else(String::new, |t| t.name.clone())
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
    if e.params.buffer == e.grads.buffer {
        return Err(Error::AliasedExternal(e.name.clone()));
    }
    let alignment = gpu.limits.min_storage_buffer_offset_alignment;
    for (role, r) in [("params", &e.params), ("grads", &e.grads)] {
        if !r.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::MissingUsage {
                tensor: e.name.clone(),
                role,
                usage: "STORAGE",
            });
        }
        if r.offset % u64::from(alignment) != 0 {
            return Err(Error::MisalignedOffset {
                tensor: e.name.clone(),
                offset: r.offset,
                alignment,
            });
        }
        let end = r.offset.saturating_add((numel * 4).next_multiple_of(16));
        if end > r.buffer.size() {
            return Err(Error::OutOfBounds {
                tensor: e.name.clone(),
                offset: r.offset,
                end,
                size: r.buffer.size(),
            });
        }
    }
    Ok((numel * 4).next_multiple_of(16))
}

pub(crate) fn check_usage(
    layout: &Layout,
    bindings: &[Binding],
    usage: wgpu::BufferUsages,
    role: &'static str,
) -> Result<()> {
    for (s, slab) in layout.slabs.iter().enumerate() {
        if let Some(k) = slab.external {
            if !bindings[s].buffer.usage().contains(usage) {
                return Err(Error::MissingUsage {
                    tensor: external_name(layout, k),
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
    gpu: Option<&Arc<Gpu>>,
    layout: &Layout,
    arena: &mut Arena,
    data: &[f32],
    role: &'static str,
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
            gpu.upload(&image_writes(bindings, &images))
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

/// The writes that put `images` (from [`slab_images`]) into `bindings`.
pub(crate) fn image_writes<'a>(
    bindings: &'a [Binding],
    images: &'a [Vec<f32>],
) -> Vec<(&'a wgpu::Buffer, u64, &'a [u8])> {
    bindings
        .iter()
        .zip(images)
        .map(|(b, image)| (&b.buffer, b.offset, bytemuck::cast_slice(image.as_slice())))
        .collect()
}

/// The pieces of tensor `t`, after [`check_transfer`] over the slabs they lie in.
fn checked_pieces(
    gpu: &Gpu,
    layout: &Layout,
    bindings: &[Binding],
    t: usize,
    usage: wgpu::BufferUsages,
    role: &'static str,
) -> Result<Vec<Piece>> {
    let pieces = layout.pieces(t);
    let slabs = pieces.iter().map(|p| p.slab);
    check_transfer(gpu, layout, bindings, slabs, usage, role)?;
    Ok(pieces)
}

/// Writes tensor `t` of `arena`.
pub(crate) fn write_tensor(
    gpu: Option<&Arc<Gpu>>,
    layout: &Layout,
    arena: &mut Arena,
    t: usize,
    data: &[f32],
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
                        b.offset + p.slab_offset * 4,
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

/// Reads every slab of `arena` in one submission; returns per-slab host copies.
fn read_slabs(
    gpu: &Gpu,
    layout: &Layout,
    bindings: &[Binding],
    role: &'static str,
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
    let ranges: Vec<_> = bindings
        .iter()
        .map(|b| (&b.buffer, b.offset, b.data_size))
        .collect();
    let all = f32s(&gpu.read_blocking(&ranges)?);
    let mut at = 0usize;
    Ok(bindings
        .iter()
        .map(|b| {
            let n = (b.data_size / 4) as usize;
            let v = all[at..at + n].to_vec();
            at += n;
            v
        })
        .collect())
}

/// All tensors of `arena`, concatenated in order.
pub(crate) fn read_all(
    gpu: Option<&Arc<Gpu>>,
    layout: &Layout,
    arena: &Arena,
    role: &'static str,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(layout.numel() as usize);
    match (gpu, arena) {
        (Some(gpu), Arena::Gpu(bindings)) => {
            let slabs = read_slabs(gpu, layout, bindings, role)?;
            for t in 0..layout.tensors.len() {
                for p in layout.pieces(t) {
                    let at = p.slab_offset as usize;
                    out.extend_from_slice(&slabs[p.slab][at..at + p.len as usize]);
                }
            }
        }
        (_, Arena::Cpu(v)) => {
            for t in &layout.tensors {
                out.extend_from_slice(&v[t.offset as usize..(t.offset + t.numel) as usize]);
            }
        }
        _ => unreachable!("arena kind always matches the context"),
    }
    Ok(out)
}

/// Tensor `t` of `arena`.
pub(crate) fn read_tensor(
    gpu: Option<&Arc<Gpu>>,
    layout: &Layout,
    arena: &Arena,
    t: usize,
    role: &'static str,
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
                    (&b.buffer, b.offset + p.slab_offset * 4, p.len * 4)
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
