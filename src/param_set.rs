//! [`ParamSet`]: named tensors packed into a few large buffers ("slabs") with a matching
//! gradient arena, and every public operation on them — uploads and downloads, device
//! views, and the standalone norm and clip operations, each a symmetric pair `op(..)`
//! (submitted, or run by the CPU backend) / `encode_op(encoder, ..)` (recorded into the
//! caller's encoder, which must come from this set's device).
//!
//! Every call validates its inputs before it touches the device, captures its own wgpu
//! errors (error scopes), and submits all or nothing: a call that returns `Err` changed no
//! parameter, gradient or earlier report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::abi::{
    DeviceStepState, NormOp, Partial, PER_TENSOR_BLOCK_RMS, SOURCE_COMPUTED, SOURCE_GIVEN,
};
use crate::arena::{
    check_transfer, read_all, read_tensor, slab_capacity, validate_externals, write_all,
    write_tensor, Arena, ArenaOptions, Binding, ExternalTensor, TensorView,
};
use crate::context::{Context, Gpu};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::host;
use crate::kernels::agc::AgcKernel;
use crate::kernels::clip::ClipKernels;
use crate::kernels::norm::{base_op, NormWorkspace};
use crate::layout::{packed_len, Layout, TensorInfo, TensorSpec};
use crate::memory;
use crate::options::{check_block_rms, check_clip_value, check_max_norm, Nonfinite, Norm};
use crate::pool::group_pools;
use crate::reference;
use crate::report::Report;
use crate::shard::ShardPartial;
use crate::slabs::{FoldTables, SlabDevice, Slabs};
use crate::typed_io::{self, Target};

/// A parameter set: the parameter arena, the matching gradient arena, and the chunk
/// tables that let every kernel run once per slab instead of once per tensor.
///
/// Host data passed to [`upload_params`](Self::upload_params) and friends is the
/// concatenation of all tensors in order, without padding.
pub struct ParamSet {
    pub(crate) id: u64,
    pub(crate) ctx: Context,
    pub(crate) layout: Arc<Layout>,
    pub(crate) params: Arena,
    pub(crate) grads: Arena,
    /// Per slab: for a 16-bit slab with f32 master weights, the 16-bit copy the model
    /// reads (`params` then holds the master weights); else `None`. Empty on the CPU.
    pub(crate) model: Vec<Option<Binding>>,
    /// The CPU backend's twin of `model`: the widened 16-bit copy of 16-bit tensors' master
    /// weights, in the virtual space (empty without master weights or 16-bit tensors).
    pub(crate) host_model: Vec<f32>,
    /// The device half; `None` on the CPU backend.
    pub(crate) device: Option<SetDevice>,
}

/// A parameter set's device objects: each slab's bindings and tables (a pool's replaced
/// when its gradients move), the fold tables, and the workspace and kernels of the
/// standalone operations.
pub(crate) struct SetDevice {
    pub gpu: Arc<Gpu>,
    pub slabs: Slabs,
    /// Per slab, the pool placements seen lately (most recent first), so gradients that
    /// move back to where they were find their tables and bind groups again.
    pub recent: Vec<Vec<Arc<SlabDevice>>>,
    pub fold: FoldTables,
    /// The caller's tensors as they are bound now (grads as last rebound).
    pub externals: Vec<ExternalTensor>,
    /// The index of the first external tensor in the set.
    pub first_external: usize,
    /// Adaptive clipping's unit tables, per convention (`Units` as index), built on first use.
    pub agc: [Option<AgcKernel>; 2],
    workspace: NormWorkspace,
    clips: ClipKernels,
}

/// What a standalone operation does to the gradients after the norm passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Apply {
    /// Nothing: a norm only.
    Nothing,
    /// `g ← g · clip_coef`.
    Scale,
    /// `g_t ← g_t · coef_t` per `NormOp::per_tensor` (PyTorch's per-tensor clip, or
    /// Optax's block RMS).
    ScalePerTensor,
    /// `g ← clamp(g, −c, c)`; no norm, no finalize.
    Clamp,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Context {
    /// A parameter set of `specs` with default options. See [`ParamSet::new`].
    pub fn param_set(&self, specs: &[TensorSpec]) -> Result<ParamSet> {
        ParamSet::new(self, specs, ArenaOptions::default())
    }
}

impl ParamSet {
    /// Allocates zeroed parameters and gradients for `specs` (and registers
    /// `options.external`), packed in slabs of at most `max_slab_bytes`.
    pub fn new(ctx: &Context, specs: &[TensorSpec], options: ArenaOptions) -> Result<ParamSet> {
        let gpu = ctx.gpu();
        if gpu.is_none() && !options.external.is_empty() {
            return Err(Error::NeedsGpu("an external tensor"));
        }
        let capacity = slab_capacity(gpu.map(|g| &g.limits), options.max_slab_bytes)?;
        let external_specs: Vec<TensorSpec> = options
            .external
            .iter()
            .map(|e| TensorSpec::new(e.name.clone(), e.shape.clone()))
            .collect();
        // Before anything is built: every size checked, the memory reserved, and the
        // caller's buffers validated.
        let internal_len = packed_len(specs, 0)?;
        packed_len(&external_specs, internal_len)?;
        let tensors = (specs.len() + external_specs.len()) as u64;
        let bytes = memory::set_bytes(internal_len, tensors);
        memory::reserve(gpu.map(|g| &**g), "this parameter set", bytes)?;
        let pools = match gpu {
            Some(gpu) => {
                validate_externals(gpu, &options.external)?;
                let numels: Vec<u64> = external_specs.iter().map(TensorSpec::numel).collect();
                let max_binding = gpu.limits.max_storage_buffer_binding_size;
                group_pools(&options.external, &numels, max_binding)
            }
            None => Vec::new(),
        };
        let layout = Arc::new(Layout::with_dtype(
            specs,
            &external_specs,
            &pools,
            capacity,
            options.dtype,
        )?);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let Some(gpu) = gpu else {
            let len = layout.internal_len as usize;
            let any_16_bit = layout.slabs.iter().any(|s| s.dtype.is_16_bit());
            return Ok(ParamSet {
                id,
                ctx: ctx.clone(),
                layout,
                params: Arena::Cpu(vec![0.0; len]),
                grads: Arena::Cpu(vec![0.0; len]),
                model: Vec::new(),
                host_model: match options.master_weights && any_16_bit {
                    true => vec![0.0; len],
                    false => Vec::new(),
                },
                device: None,
            });
        };
        let first_external = specs.len();
        // Every allocation in the call's error scope: too little memory is a typed error,
        // not a lost device.
        let device = gpu.scoped(|| {
            let slabs: Slabs = (0..layout.slabs.len())
                .map(|s| {
                    Arc::new(match &layout.slabs[s].pool {
                        Some(members) => {
                            let ext = |t: usize| &options.external[t - first_external];
                            let params: Vec<_> = members.iter().map(|&t| &ext(t).params).collect();
                            let grads: Vec<_> = members.iter().map(|&t| &ext(t).grads).collect();
                            SlabDevice::pooled(gpu, &layout, s, &params, &grads)
                        }
                        None => SlabDevice::own(gpu, &layout, s, options.master_weights),
                    })
                })
                .collect();
            let fold = FoldTables::new(gpu, &layout);
            let workspace = NormWorkspace::new(gpu, &layout, &fold, &[]);
            let clips = ClipKernels::new(&layout, &workspace, &fold);
            Ok(SetDevice {
                gpu: gpu.clone(),
                recent: slabs.iter().map(|slab| vec![slab.clone()]).collect(),
                slabs,
                fold,
                externals: options.external.clone(),
                first_external,
                agc: [None, None],
                workspace,
                clips,
            })
        })?;
        Ok(ParamSet {
            id,
            ctx: ctx.clone(),
            layout,
            params: Arena::Gpu(device.slabs.iter().map(|s| s.params.clone()).collect()),
            grads: Arena::Gpu(device.slabs.iter().map(|s| s.grads.clone()).collect()),
            model: device.slabs.iter().map(|s| s.model.clone()).collect(),
            host_model: Vec::new(),
            device: Some(device),
        })
    }

    /// The tensors, in order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.layout.tensors
    }

    /// Total elements over all tensors (padding excluded).
    pub fn numel(&self) -> u64 {
        self.layout.numel()
    }

    /// Number of slabs (each costs one dispatch per elementwise kernel): the internal ones,
    /// then one per pool of external tensors.
    pub fn num_slabs(&self) -> usize {
        self.layout.slabs.len()
    }

    /// The context this set lives on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    // --- host data ------------------------------------------------------------------

    /// Writes every parameter: `data` is all tensors concatenated in order. A 16-bit
    /// tensor's parameters become `data` rounded to nearest even (and with master weights,
    /// its master becomes `data` itself).
    pub fn upload_params(&mut self, data: &[f32]) -> Result<()> {
        self.write_values(None, data, true)
    }

    /// Writes every gradient: `data` is all tensors concatenated in order (a 16-bit
    /// tensor's rounded to nearest even).
    pub fn upload_grads(&mut self, data: &[f32]) -> Result<()> {
        self.write_values(None, data, false)
    }

    /// Writes one tensor's parameters (see [`ParamSet::upload_params`]).
    pub fn upload_param(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let t = self.layout.index(name)?;
        self.write_values(Some(t), data, true)
    }

    /// Writes one tensor's gradient (see [`ParamSet::upload_grads`]).
    pub fn upload_grad(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let t = self.layout.index(name)?;
        self.write_values(Some(t), data, false)
    }

    /// Reads every parameter back (all tensors concatenated in order): f32 parameters, a
    /// 16-bit tensor's master weights, or without master weights its 16-bit parameters
    /// widened. Syncs with the device.
    pub fn download_params(&self) -> Result<Vec<f32>> {
        self.read_values(None, true)
    }

    /// Reads every gradient back (all tensors concatenated in order; 16-bit gradients
    /// widened exactly). Syncs with the device.
    pub fn download_grads(&self) -> Result<Vec<f32>> {
        self.read_values(None, false)
    }

    /// Reads one tensor's parameters back (see [`ParamSet::download_params`]).
    pub fn download_param(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.layout.index(name)?;
        self.read_values(Some(t), true)
    }

    /// Reads one tensor's gradient back.
    pub fn download_grad(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.layout.index(name)?;
        self.read_values(Some(t), false)
    }

    /// Whether 16-bit tensors keep f32 master weights ([`ArenaOptions::master_weights`]).
    pub fn has_master_weights(&self) -> bool {
        self.model.iter().any(Option::is_some) || !self.host_model.is_empty()
    }

    /// Writes every gradient of a set whose tensors are all 16-bit as bit patterns (each
    /// tensor's f16 or bf16), all tensors concatenated in order.
    pub fn upload_grads_bits(&mut self, bits: &[u16]) -> Result<()> {
        self.write_grad_bits(None, bits)
    }

    /// Writes one 16-bit tensor's gradient as bit patterns.
    pub fn upload_grad_bits(&mut self, name: &str, bits: &[u16]) -> Result<()> {
        let t = self.layout.index(name)?;
        self.write_grad_bits(Some(t), bits)
    }

    /// Reads every gradient of a set whose tensors are all 16-bit as bit patterns. Syncs.
    pub fn download_grads_bits(&self) -> Result<Vec<u16>> {
        self.read_bits(None, false)
    }

    /// Reads one 16-bit tensor's gradient as bit patterns. Syncs.
    pub fn download_grad_bits(&self, name: &str) -> Result<Vec<u16>> {
        self.read_bits(Some(self.layout.index(name)?), false)
    }

    /// Reads the 16-bit parameters the model reads (the rounded copy of the master
    /// weights, or the parameters themselves) of a set whose tensors are all 16-bit, as
    /// bit patterns. Syncs.
    pub fn download_params_bits(&self) -> Result<Vec<u16>> {
        self.read_bits(None, true)
    }

    /// Reads one 16-bit tensor's parameters as the model reads them, as bit patterns.
    pub fn download_param_bits(&self, name: &str) -> Result<Vec<u16>> {
        self.read_bits(Some(self.layout.index(name)?), true)
    }

    /// Whether some tensor is 16-bit (transfers then go through [`typed_io`]).
    pub(crate) fn has_16_bit(&self) -> bool {
        self.layout.slabs.iter().any(|s| s.dtype.is_16_bit())
    }

    fn gpu_of(&self, what: &'static str) -> Result<&Gpu> {
        self.ctx.gpu().map(|g| &**g).ok_or(Error::NeedsGpu(what))
    }

    /// Per slab, `arena`'s binding with the element type the slab's tensors have.
    fn typed<'a>(&'a self, arena: &'a Arena) -> Vec<Target<'a>> {
        let bindings = gpu_bindings(arena);
        self.layout
            .slabs
            .iter()
            .zip(bindings)
            .map(|(slab, b)| Some((b, slab.dtype)))
            .collect()
    }

    /// Per slab, the parameters the model reads: f32 params, a 16-bit slab's copy of its
    /// master weights, or its 16-bit params.
    fn model_targets(&self) -> Vec<Target<'_>> {
        self.typed(&self.params)
            .into_iter()
            .zip(&self.model)
            .map(|(target, model)| match (target, model) {
                (Some((_, dtype)), Some(m)) => Some((m, dtype)),
                (target, _) => target,
            })
            .collect()
    }

    /// Per slab, the params binding with what it holds: f32 (an f32 slab's parameters, a
    /// 16-bit slab's master weights) or 16 bits (a 16-bit slab without master weights).
    fn param_targets(&self) -> Vec<Target<'_>> {
        self.typed(&self.params)
            .into_iter()
            .zip(&self.model)
            .map(|(target, model)| match (target, model) {
                (Some((b, _)), Some(_)) => Some((b, Dtype::F32)),
                (target, _) => target,
            })
            .collect()
    }

    /// [`Error::WrongDtype`] unless every covered tensor is 16-bit.
    fn check_16_bit(&self, tensor: Option<usize>, what: &'static str) -> Result<()> {
        match typed_io::covered(&self.layout, tensor)
            .into_iter()
            .map(|t| &self.layout.tensors[t])
            .find(|t| !t.dtype.is_16_bit())
        {
            Some(t) => Err(Error::WrongDtype {
                what,
                needs: "16-bit (f16 or bf16) tensors",
                set: t.dtype,
            }),
            None => Ok(()),
        }
    }

    /// Writes `data` (the covered tensors concatenated) into the parameters (`params`) or
    /// the gradients: f32 arenas as they always were; with 16-bit tensors, each tensor in
    /// its own type (and with master weights, parameters into the master and the copy).
    fn write_values(&mut self, t: Option<usize>, data: &[f32], params: bool) -> Result<()> {
        let (role, what) = match params {
            true => ("params", "upload_params"),
            false => ("grads", "upload_grads"),
        };
        if !self.has_16_bit() {
            let arena = if params {
                &mut self.params
            } else {
                &mut self.grads
            };
            return match t {
                Some(t) => write_tensor(self.ctx.gpu(), &self.layout, arena, t, data, role),
                None => write_all(self.ctx.gpu(), &self.layout, arena, data, role),
            };
        }
        typed_io::check_len(&self.layout, t, data.len(), role)?;
        if self.device.is_none() {
            self.host_write(t, data, params);
            return Ok(());
        }
        let gpu = self.gpu_of(what)?;
        let arena = if params { &self.params } else { &self.grads };
        let all = 0..self.layout.slabs.len();
        let bindings = gpu_bindings(arena);
        check_transfer(
            gpu,
            &self.layout,
            bindings,
            all,
            wgpu::BufferUsages::COPY_DST,
            role,
        )?;
        let writes = if params {
            // The model's parameters, then the master weights of 16-bit slabs (an f32 slab
            // is its own model).
            let masters: Vec<Target<'_>> = self
                .param_targets()
                .into_iter()
                .zip(&self.model)
                .map(|(target, m)| m.as_ref().and(target))
                .collect();
            let mut writes = typed_io::value_writes(&self.layout, &self.model_targets(), t, data);
            writes.extend(typed_io::value_writes(&self.layout, &masters, t, data));
            writes
        } else {
            typed_io::value_writes(&self.layout, &self.typed(arena), t, data)
        };
        typed_io::upload(gpu, &writes)
    }

    /// The covered tensors' parameters (`params`: f32, master weights, or 16-bit widened)
    /// or gradients, concatenated. Syncs.
    fn read_values(&self, t: Option<usize>, params: bool) -> Result<Vec<f32>> {
        let (role, what, arena) = match params {
            true => ("params", "download_params", &self.params),
            false => ("grads", "download_grads", &self.grads),
        };
        if !self.has_16_bit() {
            return match t {
                Some(t) => read_tensor(self.ctx.gpu(), &self.layout, arena, t, role),
                None => read_all(self.ctx.gpu(), &self.layout, arena, role),
            };
        }
        if self.device.is_none() {
            return Ok(self.host_read(t, host_values(arena)));
        }
        let targets = match params {
            true => self.param_targets(),
            false => self.typed(arena),
        };
        typed_io::read_values(self.gpu_of(what)?, &self.layout, &targets, t)
    }

    fn write_grad_bits(&mut self, t: Option<usize>, bits: &[u16]) -> Result<()> {
        self.check_16_bit(t, "upload_grads_bits")?;
        typed_io::check_len(&self.layout, t, bits.len(), "grads")?;
        if self.device.is_none() {
            let values: Vec<f32> = bits
                .iter()
                .zip(self.covered_dtypes(t))
                .map(|(&h, d)| d.widen(h))
                .collect();
            self.host_write(t, &values, false);
            return Ok(());
        }
        let gpu = self.gpu_of("upload_grads_bits")?;
        let writes = typed_io::bit_writes(&self.layout, &self.typed(&self.grads), t, bits);
        typed_io::upload(gpu, &writes)
    }

    fn read_bits(&self, t: Option<usize>, params: bool) -> Result<Vec<u16>> {
        let what = if params {
            "download_params_bits"
        } else {
            "download_grads_bits"
        };
        self.check_16_bit(t, what)?;
        if self.device.is_none() {
            // The host values of 16-bit tensors are exact in 16 bits: rounding recovers them.
            let values = match (params, self.host_model.is_empty()) {
                (false, _) => host_values(&self.grads),
                (true, true) => host_values(&self.params),
                (true, false) => &self.host_model,
            };
            let values = self.host_read(t, values);
            let dtypes = self.covered_dtypes(t);
            return Ok(values
                .iter()
                .zip(dtypes)
                .map(|(&x, d)| d.round(x))
                .collect());
        }
        let gpu = self.gpu_of(what)?;
        let targets = match params {
            true => self.model_targets(),
            false => self.typed(&self.grads),
        };
        typed_io::read_bits(gpu, &self.layout, &targets, t)
    }

    /// The CPU backend's twin of the typed uploads: f32 tensors as given; a 16-bit
    /// tensor's gradient, or its parameters without master weights, as the widened 16-bit
    /// rounding of `data` (the values the device would hold); with master weights its
    /// master as given and its copy rounded.
    fn host_write(&mut self, t: Option<usize>, data: &[f32], params: bool) {
        let (Arena::Cpu(p), Arena::Cpu(g)) = (&mut self.params, &mut self.grads) else {
            unreachable!("a set without a device holds host arenas")
        };
        let model = &mut self.host_model;
        let mut at = 0usize;
        for tt in typed_io::covered(&self.layout, t) {
            let info = &self.layout.tensors[tt];
            let range = info.offset as usize..(info.offset + info.numel) as usize;
            let part = &data[at..at + info.numel as usize];
            at += info.numel as usize;
            let half = info.dtype.is_16_bit();
            if params && half && !model.is_empty() {
                p[range.clone()].copy_from_slice(part);
            }
            // Where the values go, and whether they are the 16-bit rounding of `data`.
            let target = match (params, half, model.is_empty()) {
                (true, true, false) => &mut model[range],
                (true, _, _) => &mut p[range],
                (false, _, _) => &mut g[range],
            };
            target.copy_from_slice(part);
            if half {
                host::round16(target, info.dtype, None, info.offset);
            }
        }
    }

    /// The covered tensors of host arena `values` (in the virtual space), concatenated.
    fn host_read(&self, t: Option<usize>, values: &[f32]) -> Vec<f32> {
        typed_io::covered(&self.layout, t)
            .into_iter()
            .flat_map(|tt| {
                let info = &self.layout.tensors[tt];
                values[info.offset as usize..(info.offset + info.numel) as usize]
                    .iter()
                    .copied()
            })
            .collect()
    }

    /// The element type of each element of the covered tensors, in order.
    fn covered_dtypes(&self, t: Option<usize>) -> impl Iterator<Item = Dtype> + '_ {
        typed_io::covered(&self.layout, t)
            .into_iter()
            .flat_map(|tt| {
                let info = &self.layout.tensors[tt];
                std::iter::repeat_n(info.dtype, info.numel as usize)
            })
    }

    // --- device views -----------------------------------------------------------------

    /// The device pieces of a tensor's gradient (usually one; more when it spans slabs),
    /// so a caller's backward kernels can write gradients in place. A 16-bit tensor's
    /// pieces hold packed 16-bit elements (byte offsets; two elements per word).
    pub fn grad_views(&self, name: &str) -> Result<Vec<TensorView<'_>>> {
        self.views(&self.grads, name)
    }

    /// The device pieces of a tensor's parameters as the model reads them: a 16-bit
    /// tensor's 16-bit parameters (with master weights, their rounded copy).
    pub fn param_views(&self, name: &str) -> Result<Vec<TensorView<'_>>> {
        if !self.has_16_bit() {
            return self.views(&self.params, name);
        }
        let t = self.layout.index(name)?;
        let targets = self.model_targets();
        Ok(self.typed_views(t, &targets))
    }

    fn views<'a>(&'a self, arena: &'a Arena, name: &str) -> Result<Vec<TensorView<'a>>> {
        let t = self.layout.index(name)?;
        let Arena::Gpu(bindings) = arena else {
            return Err(Error::NeedsGpu("a device view of a tensor"));
        };
        if self.has_16_bit() {
            return Ok(self.typed_views(t, &self.typed(arena)));
        }
        Ok(self
            .layout
            .pieces(t)
            .into_iter()
            .map(|p| TensorView {
                buffer: &bindings[p.slab].buffer,
                offset: bindings[p.slab].piece_offset(&self.layout, t, &p),
                len: p.len,
                tensor_offset: p.tensor_offset,
            })
            .collect())
    }

    /// Views of tensor `t` in `targets` (byte offsets by each slab's element type).
    fn typed_views<'a>(&self, t: usize, targets: &[Target<'a>]) -> Vec<TensorView<'a>> {
        self.layout
            .pieces(t)
            .into_iter()
            .filter_map(|p| {
                let (b, dtype) = targets[p.slab]?;
                Some(TensorView {
                    buffer: &b.buffer,
                    offset: typed_io::offset(b, &self.layout, t, &p, dtype),
                    len: p.len,
                    tensor_offset: p.tensor_offset,
                })
            })
            .collect()
    }

    // --- standalone operations ----------------------------------------------------------

    /// `g ← 0` for every gradient (PyTorch `zero_grad(set_to_none=False)`), submitted.
    pub fn zero_grad(&mut self) -> Result<()> {
        match (&mut self.grads, &self.device) {
            (Arena::Cpu(grads), _) => {
                grads.fill(0.0);
                Ok(())
            }
            (Arena::Gpu(grads), Some(device)) => device.gpu.submit_atomic(|encoder| {
                record_zero_grad(&device.gpu, &self.layout, grads, encoder)
            }),
            (Arena::Gpu(_), None) => unreachable!("GPU arenas belong to GPU sets"),
        }
    }

    /// Records `g ← 0` for every gradient (buffer clears, no kernel).
    pub fn encode_zero_grad(&mut self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let (Arena::Gpu(grads), Some(device)) = (&self.grads, &self.device) else {
            return Err(Error::NeedsGpu("encode_zero_grad"));
        };
        device
            .gpu
            .scoped(|| record_zero_grad(&device.gpu, &self.layout, grads, encoder))
    }

    /// The global norm `‖concat(g)‖` and every per-tensor norm `‖g_t‖`, from one set of
    /// passes (PyTorch `get_total_norm`; `torch.linalg.vector_norm` per tensor), submitted.
    /// Nothing is read back until the report is read.
    pub fn global_norm(&mut self, norm: Norm) -> Result<Report> {
        let op = self.norm_op(norm)?;
        self.run(None, op, Nonfinite::Propagate, Apply::Nothing)
    }

    /// Phase 1 of a sharded global norm (see [`crate::shard`]): this set's share
    /// `S = Σ_t Σ_i |g_{t,i}|^p` (`max` for L∞) over every tensor of the set, exact, with
    /// its NaN/±Inf flags, from one norm pass and one readback (a host sync). Under
    /// `Nonfinite::ZeroNans` NaN elements count as 0 (and are still flagged). Combine the
    /// ranks' partials with [`crate::shard::combine`] and apply the total with
    /// [`ParamSet::clip_grads_with_norm`] or [`crate::StepOptions::total_norm`]; for
    /// tensors replicated on every rank use [`crate::Optimizer::norm_partial`] with a
    /// [replicated](crate::ParamGroup::replicated) group.
    pub fn norm_partial(&mut self, norm: Norm, nonfinite: Nonfinite) -> Result<ShardPartial> {
        let counted = vec![true; self.layout.tensors.len()];
        self.norm_partial_counting(norm, nonfinite, &counted)
    }

    /// [`ParamSet::norm_partial`] counting only the tensors `t` with `counted[t]` in the
    /// sum (every tensor's flags count).
    pub(crate) fn norm_partial_counting(
        &mut self,
        norm: Norm,
        nonfinite: Nonfinite,
        counted: &[bool],
    ) -> Result<ShardPartial> {
        let op = NormOp {
            policy: nonfinite.code(),
            ..self.norm_op(norm)?
        };
        let sums = if self.device.is_some() {
            self.run(None, op, Nonfinite::Propagate, Apply::Nothing)?;
            let device = self.device.as_ref().expect("checked above");
            let bytes = (self.layout.tensors.len() * std::mem::size_of::<Partial>()) as u64;
            let raw = device
                .gpu
                .read_blocking(&[(&device.workspace.tensor_sums, 0, bytes)])?;
            bytemuck::pod_collect_to_vec::<u8, Partial>(&raw)
                .iter()
                .map(|p| (p.value, p.flags))
                .collect()
        } else {
            let Arena::Cpu(grads) = &self.grads else {
                unreachable!("a set without a device holds host arenas")
            };
            host::tensor_sums(&self.layout, grads, &op)
        };
        Ok(ShardPartial::from_tensor_sums(
            norm, nonfinite, &sums, counted,
        ))
    }

    /// Records [`ParamSet::global_norm`] into `encoder`.
    pub fn encode_global_norm(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        norm: Norm,
    ) -> Result<Report> {
        let op = self.norm_op(norm)?;
        self.run(Some(encoder), op, Nonfinite::Propagate, Apply::Nothing)
    }

    /// `[‖g_t‖ for t in tensors]` in the report's [`Report::tensor_norms`] (the same pass
    /// as [`ParamSet::global_norm`], which the report also holds), submitted.
    pub fn per_tensor_norms(&mut self, norm: Norm) -> Result<Report> {
        self.global_norm(norm)
    }

    /// Records [`ParamSet::per_tensor_norms`] into `encoder`.
    pub fn encode_per_tensor_norms(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        norm: Norm,
    ) -> Result<Report> {
        self.encode_global_norm(encoder, norm)
    }

    /// PyTorch `clip_grad_norm_(grads, max_norm, norm_type)`, submitted: the total norm
    /// `‖g‖`, then `g ← g · min(1, max_norm / (‖g‖ + 1e-6))` in place. The report holds
    /// `‖g‖` (what PyTorch returns). `Nonfinite::Propagate` scales a non-finite gradient
    /// anyway, as PyTorch does; `Skip`/`Error` leave every gradient untouched.
    pub fn clip_grad_norm(
        &mut self,
        max_norm: f32,
        norm: Norm,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(None, op, nonfinite, Apply::Scale)
    }

    /// Records [`ParamSet::clip_grad_norm`] into `encoder`.
    pub fn encode_clip_grad_norm(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        max_norm: f32,
        norm: Norm,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::Scale)
    }

    /// PyTorch `clip_grads_with_norm_(grads, max_norm, total_norm)`, submitted:
    /// `g ← g · min(1, max_norm / (total_norm + 1e-6))` with a total norm computed
    /// elsewhere (another rank's partial sums, an earlier [`ParamSet::global_norm`]), so
    /// the norm and its application compose. A NaN or infinite `total_norm` counts as
    /// non-finite gradients under `nonfinite`; a negative one is an error.
    pub fn clip_grads_with_norm(
        &mut self,
        max_norm: f32,
        total_norm: f32,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.with_norm_op(max_norm, total_norm, nonfinite)?;
        self.run(None, op, nonfinite, Apply::Scale)
    }

    /// Records [`ParamSet::clip_grads_with_norm`] into `encoder`.
    pub fn encode_clip_grads_with_norm(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        max_norm: f32,
        total_norm: f32,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.with_norm_op(max_norm, total_norm, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::Scale)
    }

    /// Per-tensor clipping, submitted: every tensor t scaled by its own coefficient,
    /// `g_t ← g_t · min(1, max_norm / (‖g_t‖ + 1e-6))` (as `clip_grad_norm_` called on each
    /// tensor alone), from one norm pass. The report's `tensor_norms` are the norms before
    /// clipping; its `total_norm` is the global norm. Under `Skip`/`Error`, any non-finite
    /// gradient leaves every gradient untouched.
    pub fn clip_grad_norm_per_tensor(
        &mut self,
        max_norm: f32,
        norm: Norm,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(None, op, nonfinite, Apply::ScalePerTensor)
    }

    /// Records [`ParamSet::clip_grad_norm_per_tensor`] into `encoder`.
    pub fn encode_clip_grad_norm_per_tensor(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        max_norm: f32,
        norm: Norm,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.clip_norm_op(max_norm, norm, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::ScalePerTensor)
    }

    /// Optax's `clip_by_block_rms(threshold)`, submitted: each tensor t scaled by
    /// `1 / max(1, rms(g_t) / threshold)` with `rms(g_t) = ‖g_t‖₂ / sqrt(numel_t)`, from
    /// one L2 norm pass. The report's `tensor_norms` are the L2 norms before clipping, its
    /// `total_norm` the global one. Under `Skip`/`Error`, any non-finite gradient leaves
    /// every gradient untouched; `ZeroNans` clips the gradients with their NaNs as 0.
    pub fn clip_by_block_rms(&mut self, threshold: f32, nonfinite: Nonfinite) -> Result<Report> {
        let op = self.block_rms_op(threshold, nonfinite)?;
        self.run(None, op, nonfinite, Apply::ScalePerTensor)
    }

    /// Records [`ParamSet::clip_by_block_rms`] into `encoder`.
    pub fn encode_clip_by_block_rms(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        threshold: f32,
        nonfinite: Nonfinite,
    ) -> Result<Report> {
        let op = self.block_rms_op(threshold, nonfinite)?;
        self.run(Some(encoder), op, nonfinite, Apply::ScalePerTensor)
    }

    /// PyTorch `clip_grad_value_(grads, clip_value)`, submitted:
    /// `g ← clamp(g, -clip_value, clip_value)` in place (NaN stays NaN).
    pub fn clip_grad_value(&mut self, clip_value: f32) -> Result<()> {
        let op = self.clip_value_op(clip_value)?;
        self.run(None, op, Nonfinite::Propagate, Apply::Clamp)
            .map(drop)
    }

    /// Records [`ParamSet::clip_grad_value`] into `encoder`.
    pub fn encode_clip_grad_value(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        clip_value: f32,
    ) -> Result<()> {
        let op = self.clip_value_op(clip_value)?;
        self.run(Some(encoder), op, Nonfinite::Propagate, Apply::Clamp)
            .map(drop)
    }

    // --- the options of each operation ------------------------------------------------

    fn norm_op(&self, norm: Norm) -> Result<NormOp> {
        let (kind, p) = norm.validate()?.code();
        Ok(NormOp {
            source: SOURCE_COMPUTED,
            kind,
            p,
            ..base_op(&self.layout)
        })
    }

    fn clip_norm_op(&self, max_norm: f32, norm: Norm, nonfinite: Nonfinite) -> Result<NormOp> {
        check_max_norm(max_norm)?;
        Ok(NormOp {
            max_norm,
            policy: nonfinite.code(),
            ..self.norm_op(norm)?
        })
    }

    fn block_rms_op(&self, threshold: f32, nonfinite: Nonfinite) -> Result<NormOp> {
        check_block_rms(threshold)?;
        Ok(NormOp {
            per_tensor: PER_TENSOR_BLOCK_RMS,
            ..self.clip_norm_op(threshold, Norm::L2, nonfinite)?
        })
    }

    fn with_norm_op(&self, max_norm: f32, total_norm: f32, nonfinite: Nonfinite) -> Result<NormOp> {
        check_max_norm(max_norm)?;
        if total_norm < 0.0 {
            return Err(Error::InvalidTotalNorm(total_norm));
        }
        Ok(NormOp {
            source: SOURCE_GIVEN,
            given_norm: total_norm,
            max_norm,
            policy: nonfinite.code(),
            ..base_op(&self.layout)
        })
    }

    fn clip_value_op(&self, clip_value: f32) -> Result<NormOp> {
        check_clip_value(clip_value)?;
        Ok(NormOp {
            clip_value,
            ..base_op(&self.layout)
        })
    }

    // --- running an operation -----------------------------------------------------------

    /// A standalone operation: recorded into `encoder`, or (without one) submitted on a
    /// GPU or run by the CPU backend. On the GPU the call's wgpu errors are its own (error
    /// scopes), and a submitted operation that fails runs none of its commands; the report
    /// replaces earlier ones only once the call succeeded.
    fn run(
        &mut self,
        encoder: Option<&mut wgpu::CommandEncoder>,
        op: NormOp,
        policy: Nonfinite,
        apply: Apply,
    ) -> Result<Report> {
        match (encoder, &self.device) {
            (Some(encoder), Some(device)) => device
                .gpu
                .scoped(|| device.record(encoder, &self.layout, &op, policy, apply))
                .map(Report::commit),
            (Some(_), None) => Err(Error::NeedsGpu("an encode_* operation")),
            (None, Some(device)) => device
                .gpu
                .submit_atomic(|encoder| device.record(encoder, &self.layout, &op, policy, apply))
                .map(Report::commit),
            (None, None) => Ok(self.run_on_host(&op, policy, apply)),
        }
    }

    /// The CPU backend's twin of [`SetDevice::record`].
    fn run_on_host(&mut self, op: &NormOp, policy: Nonfinite, apply: Apply) -> Report {
        let Arena::Cpu(grads) = &mut self.grads else {
            unreachable!("a set without a device holds host arenas")
        };
        let (sum, per_tensor) = if op.source == SOURCE_COMPUTED {
            let (sum, per_tensor) = host::norm(&self.layout, grads, op, None);
            (Some(sum), per_tensor)
        } else {
            (None, Vec::new())
        };
        let state = host::finalize(&DeviceStepState::initial(), op, sum);
        if state.skipped == 0 {
            for (t, info) in self.layout.tensors.iter().enumerate() {
                let g = &mut grads[info.offset as usize..(info.offset + info.numel) as usize];
                if matches!(apply, Apply::Scale | Apply::ScalePerTensor) {
                    g.iter_mut().for_each(|x| *x = host::zero_nan(*x, &state));
                }
                match apply {
                    Apply::Nothing => {}
                    Apply::Scale => {
                        reference::clip_grads_with_norm(&mut [g], op.max_norm, state.total_norm)
                    }
                    Apply::ScalePerTensor if op.per_tensor == PER_TENSOR_BLOCK_RMS => {
                        let coef = reference::block_rms_coef(per_tensor[t], g.len(), op.max_norm);
                        g.iter_mut().for_each(|x| *x *= coef);
                    }
                    Apply::ScalePerTensor => {
                        reference::clip_grads_with_norm(&mut [g], op.max_norm, per_tensor[t])
                    }
                    Apply::Clamp => reference::clip_grad_value(&mut [g], op.clip_value),
                }
                // A 16-bit gradient is written back rounded, as the device writes it.
                if apply != Apply::Nothing && info.dtype.is_16_bit() {
                    host::round16(g, info.dtype, None, info.offset);
                }
            }
        }
        Report::host(state, per_tensor, policy, op.source)
    }
}

impl SetDevice {
    /// Records a standalone operation: its options in stream, then one compute pass with
    /// the norm passes and finalize (unless it only clamps) and the clip kernel.
    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        layout: &Layout,
        op: &NormOp,
        policy: Nonfinite,
        apply: Apply,
    ) -> Result<Report> {
        let (gpu, ws) = (&self.gpu, &self.workspace);
        gpu.write_in_stream(encoder, &[ws.op_write(op)])?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("clipstep"),
                timestamp_writes: None,
            });
            let slabs = &self.slabs;
            if apply != Apply::Clamp {
                ws.encode(&mut pass, gpu, layout, slabs, op);
            }
            match apply {
                Apply::Nothing => {}
                Apply::Scale => self.clips.encode_scale(&mut pass, gpu, layout, slabs),
                Apply::ScalePerTensor => self
                    .clips
                    .encode_scale_per_tensor(&mut pass, gpu, layout, slabs),
                Apply::Clamp => self.clips.encode_clamp(&mut pass, gpu, layout, slabs),
            }
        }
        Ok(Report::gpu(
            gpu,
            ws,
            layout.tensors.len(),
            policy,
            op.source,
        ))
    }
}

/// Records a clear of every gradient slab.
fn record_zero_grad(
    gpu: &Gpu,
    layout: &Layout,
    grads: &[Binding],
    encoder: &mut wgpu::CommandEncoder,
) -> Result<()> {
    let all = 0..grads.len();
    check_transfer(
        gpu,
        layout,
        grads,
        all,
        wgpu::BufferUsages::COPY_DST,
        "grads",
    )?;
    // A pool's tensors one by one: the gaps between them are the caller's.
    for (s, b) in grads.iter().enumerate() {
        for (_, at, bytes) in b.ranges(layout, s) {
            encoder.clear_buffer(&b.buffer, at, Some(bytes));
        }
    }
    Ok(())
}

impl ParamSet {
    /// The slabs as the kernels bind them now (empty on the CPU backend).
    pub(crate) fn device_slabs(&self) -> &[Arc<SlabDevice>] {
        self.device.as_ref().map_or(&[], |d| &d.slabs)
    }
}

/// The gradient bindings of a GPU set.
/// A CPU set's host values.
fn host_values(arena: &Arena) -> &[f32] {
    match arena {
        Arena::Cpu(values) => values,
        Arena::Gpu(_) => unreachable!("a set without a device holds host arenas"),
    }
}

pub(crate) fn gpu_bindings(arena: &Arena) -> &[Binding] {
    match arena {
        Arena::Gpu(bindings) => bindings,
        Arena::Cpu(_) => unreachable!("GPU sets hold GPU arenas"),
    }
}
