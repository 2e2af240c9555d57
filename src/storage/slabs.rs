//! The device half of a parameter set's slabs: per slab its params and grads bindings,
//! chunk table, place table and `Slab` uniform ([`SlabDevice`]), and the set-wide tables of
//! the per-tensor fold ([`FoldTables`]). A pool's `SlabDevice` is rebuilt (or found again)
//! when its gradients move; the kernels cache their bind groups by `SlabDevice::id`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::device::context::Gpu;
use crate::dtype::Dtype;
use crate::kernels::abi::{Chunk, Slab};
use crate::kernels::shaders::{Access, Addressing, Body, KernelKey, StateStorage};
use crate::storage::arena::{own_binding, Binding, BufferRange};
use crate::storage::layout::Layout;
use crate::storage::pool::{placement, PlaceRow};

static NEXT_SLAB_ID: AtomicU64 = AtomicU64::new(1);

/// One slab as the kernels bind it.
pub(crate) struct SlabDevice {
    /// Unique for the process: the key of every kernel's bind-group cache.
    pub id: u64,
    pub params: Binding,
    pub grads: Binding,
    /// A pool of a caller's tensors (its elementwise kernels use the place table).
    pub pooled: bool,
    /// Params and grads in one caller buffer: the update kernel binds it once.
    pub shared: bool,
    /// The element type of the grads binding (and of `model`, or of the params binding
    /// without master weights).
    pub dtype: Dtype,
    /// A 16-bit slab's f32 master weights are the params binding, and `model` their
    /// 16-bit copy (else the params binding holds the 16-bit parameters).
    pub model: Option<Binding>,
    /// The chunk table of the norm kernels (starts relative to the grads binding).
    pub chunks: wgpu::Buffer,
    /// A pool's place table (a one-row placeholder for a slab of clipstep's own).
    pub places: wgpu::Buffer,
    /// The `Slab` uniform.
    pub uniform: wgpu::Buffer,
}

impl SlabDevice {
    /// Slab `s` of clipstep's own: a params and a grads buffer of its length, of its
    /// element type; a 16-bit slab with `master` weights has f32 params and a 16-bit copy
    /// the model reads.
    pub(crate) fn own(gpu: &Gpu, layout: &Layout, s: usize, master: bool) -> SlabDevice {
        let slab = &layout.slabs[s];
        let dtype = slab.dtype;
        let half = dtype.is_16_bit();
        let param_type = if half && master { Dtype::F32 } else { dtype };
        let params = own_binding(gpu, "params", slab, param_type);
        let grads = own_binding(gpu, "grads", slab, dtype);
        let places: [PlaceRow; 1] = [[0; 2]];
        let mut device = Self::build(
            gpu,
            layout,
            s,
            params,
            grads,
            false,
            &layout.chunks[s],
            &places,
        );
        device.dtype = dtype;
        device.model = (half && master).then(|| own_binding(gpu, "model params", slab, dtype));
        device
    }

    /// Pooled slab `s`, its j-th tensor at `params[j]` and `grads[j]`.
    pub(crate) fn pooled(
        gpu: &Gpu, layout: &Layout, s: usize, params: &[&BufferRange], grads: &[&BufferRange],
    ) -> SlabDevice {
        let p = placement(layout, s, params, grads);
        Self::build(
            gpu, layout, s, p.params, p.grads, p.shared, &p.chunks, &p.places,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &Gpu, layout: &Layout, s: usize, params: Binding, grads: Binding, shared: bool,
        chunks: &[Chunk], places: &[PlaceRow],
    ) -> SlabDevice {
        let table = |label: &str, bytes: &[u8]| {
            let b = gpu.storage(label, bytes.len().max(16) as u64);
            gpu.queue.write_buffer(&b, 0, bytes);
            b
        };
        let [num_big, num_mid, _] = layout.class_counts[s];
        let uniform = Slab {
            len: layout.slabs[s].len as u32,
            num_big,
            num_mid,
            num_chunks: chunks.len() as u32,
            base: layout.slabs[s].base as u32,
            ..Slab::default()
        };
        SlabDevice {
            id: NEXT_SLAB_ID.fetch_add(1, Ordering::Relaxed),
            pooled: layout.slabs[s].pool.is_some(),
            params,
            grads,
            shared,
            dtype: Dtype::F32,
            model: None,
            chunks: table("chunk table", bytemuck::cast_slice(chunks)),
            places: table("place table", bytemuck::cast_slice(places)),
            uniform: gpu.uniform("slab", bytemuck::bytes_of(&uniform)),
        }
    }
}

/// The per-tensor tables: per tensor its chunk range, the tensors folded by a workgroup of
/// their own, and per tensor `sqrt(numel)` (the block-RMS clip's divisor).
pub(crate) struct FoldTables {
    pub ranges: wgpu::Buffer,
    pub big_tensors: wgpu::Buffer,
    pub sqrt_numel: wgpu::Buffer,
}

impl FoldTables {
    pub(crate) fn new(gpu: &Gpu, layout: &Layout) -> FoldTables {
        let upload = |label: &str, bytes: &[u8]| {
            let b = gpu.storage(label, bytes.len() as u64);
            gpu.queue.write_buffer(&b, 0, bytes);
            b
        };
        FoldTables {
            ranges: upload("tensor chunk ranges", bytemuck::cast_slice(&layout.ranges)),
            big_tensors: upload("big tensors", bytemuck::cast_slice(&layout.big_tensors)),
            sqrt_numel: upload("sqrt numel", bytemuck::cast_slice(&sqrt_numels(layout))),
        }
    }
}

/// Per tensor, `sqrt(numel)` in f32, as `reference::block_rms_coef` computes it.
pub(crate) fn sqrt_numels(layout: &Layout) -> Vec<f32> {
    layout
        .tensors
        .iter()
        .map(|t| (t.numel as f32).sqrt())
        .collect()
}

/// The slabs of a set as the kernels see them now: shared by the set's operations and
/// every optimizer on it, replaced slab by slab when gradients move.
pub(crate) type Slabs = Vec<Arc<SlabDevice>>;

impl SlabDevice {
    /// The kernel of `body` for this slab: its element access (f32, 16-bit with or without
    /// master weights, params and grads in one buffer) and addressing (own or a pool), with
    /// f32 states ([`KernelKey::with_states`] changes them).
    pub(crate) fn kernel(&self, body: Body) -> KernelKey {
        let access = match (self.dtype.is_16_bit(), self.shared) {
            (true, _) => Access::Half {
                dtype: self.dtype,
                master: self.model.is_some(),
            },
            (false, true) => Access::Shared,
            (false, false) => Access::F32,
        };
        let addressing = match self.pooled {
            true => Addressing::Pooled,
            false => Addressing::Own,
        };
        KernelKey::new(body, access, addressing, StateStorage::F32)
    }

    /// `entries` plus, for a pooled kernel, the place table at binding 10.
    pub(crate) fn with_places<'a>(
        &'a self, kernel: KernelKey, mut entries: Vec<(u32, wgpu::BindingResource<'a>)>,
    ) -> Vec<(u32, wgpu::BindingResource<'a>)> {
        if kernel.pooled() {
            entries.push((10, self.places.as_entire_binding()));
        }
        entries
    }
}
