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

use crate::device::context::{Context, Gpu};
use crate::device::memory;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::kernels::agc::AgcKernel;
use crate::kernels::clip::ClipKernels;
use crate::kernels::norm::{NormWorkspace, RAN_AT};
use crate::storage::arena::{
    slab_capacity, validate_externals, Arena, ArenaOptions, Binding, ExternalTensor,
};
use crate::storage::layout::{packed_len, Layout, TensorInfo, TensorSpec};
use crate::storage::pool::group_pools;
use crate::storage::slabs::{FoldTables, SlabDevice, Slabs};
use crate::storage::typed_io::{self, Target};

mod adaptive_clip;
mod operations;
pub(crate) mod rebind;
mod transfers;
mod views;

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
    /// Recordings into a caller's encoder that read or write this set and may not be
    /// submitted yet: each workspace's `ran` buffer and the recording's generation.
    pub pending: std::sync::Mutex<Vec<(wgpu::Buffer, u64)>>,
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
        let device = memory::refused(
            gpu.scoped(|| {
                let slabs: Slabs = (0..layout.slabs.len())
                    .map(|s| {
                        Arc::new(match &layout.slabs[s].pool {
                            Some(members) => {
                                let ext = |t: usize| &options.external[t - first_external];
                                let params: Vec<_> =
                                    members.iter().map(|&t| &ext(t).params).collect();
                                let grads: Vec<_> =
                                    members.iter().map(|&t| &ext(t).grads).collect();
                                SlabDevice::pooled(gpu, &layout, s, &params, &grads)
                            }
                            None => SlabDevice::own(gpu, &layout, s, options.master_weights),
                        })
                    })
                    .collect();
                let fold = FoldTables::new(gpu, &layout);
                let workspace = NormWorkspace::new(gpu, &layout, &fold, 0, 0);
                let clips = ClipKernels::new(&layout, &workspace, &fold);
                Ok(SetDevice {
                    pending: Default::default(),
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
            }),
            "this parameter set",
            bytes,
        )?;
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

    /// Whether some tensor is 16-bit (transfers then go through [`typed_io`]).
    pub(crate) fn has_16_bit(&self) -> bool {
        self.layout.slabs.iter().any(|s| s.dtype.is_16_bit())
    }

    fn gpu_of(&self, what: &'static str) -> Result<&Gpu> {
        self.ctx.gpu().map(|g| &**g).ok_or(Error::NeedsGpu(what))
    }

    /// Notes a recording into a caller's encoder that reads or writes this set: until the
    /// device has run it, a transfer would land out of its order. One entry per `ran`
    /// buffer, holding its latest generation (a buffer's generations only grow): a loop of
    /// recorded steps with no upload between them keeps one entry, not one per step.
    pub(crate) fn note_recorded(&self, ran: &wgpu::Buffer, generation: u64) {
        if let Some(device) = &self.device {
            let mut pending = device.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.iter_mut().find(|(buffer, _)| buffer == ran) {
                Some((_, latest)) => *latest = (*latest).max(generation),
                None => pending.push((ran.clone(), generation)),
            }
        }
    }

    /// Before an upload (`what`): [`Error::UnsubmittedRecording`] if an
    /// operation recorded into a caller's encoder on this set has not run, since a transfer
    /// goes through the queue and would land before that encoder's commands (an upload
    /// between two recorded steps would feed both). The first check after such a recording
    /// reads the recordings' generations back (a host sync); none is made otherwise.
    pub(crate) fn check_in_order(&self, what: &'static str) -> Result<()> {
        let Some(device) = &self.device else {
            return Ok(());
        };
        let mut pending = device.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return Ok(());
        }
        let ranges: Vec<_> = pending.iter().map(|(ran, _)| (ran, RAN_AT, 8)).collect();
        let ran = device.gpu.read_blocking(&ranges)?;
        let unrun = pending
            .iter()
            .zip(ran.chunks_exact(8))
            .any(|((_, want), got)| u64::from_le_bytes(got.try_into().expect("8 bytes")) < *want);
        if unrun {
            return Err(Error::UnsubmittedRecording(what));
        }
        pending.clear();
        Ok(())
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
