//! The bind-group recipe and dispatch shared by every update kernel (each rule's
//! `shaders/rules/<rule>.wgsl`, on its slab's access and addressing parts): per slab,
//! params at binding 0, grads at 1 (absent in the shared-buffer access, which reads them
//! inside the params binding), the rule's states at 2, 3, … (one per state slot), the step
//! state at 5, the rule's group table (one row per parameter group) at 6, the slab at 7,
//! the slab's block→group table at 8, the per-group bias corrections at 9, in a pool the
//! slab's place table at 10, a trust rule's ratios and block→tensor table at 11 and 12 (its
//! trust pass: the chunk table at 13 and the partials at 14), on a 16-bit slab with
//! master weights the 16-bit model copy at 15, where some state slot is sparse (kept by
//! some groups only) the slab's compact-block table at 16, and Muon's per-tensor table and
//! Newton–Schulz workspace at 26 and 27.

use std::sync::Arc;

use crate::device::context::Gpu;
use crate::device::gpu::{elementwise_groups, whole, BufferPart};
use crate::error::Result;
use crate::kernels::cache::BindCache;
use crate::kernels::factor::Factor;
use crate::kernels::matmul::Ortho;
use crate::kernels::shaders::{Body, KernelKey, RuleShader, StateStorage, SHAPE_GROUP_GATHER};
use crate::kernels::trust::{Trust, TrustSetup};
use crate::reference::{MuonLrAdjust, NewtonSchulz};
use crate::storage::arena::{Arena, Binding};
use crate::storage::factored::FactorLayout;
use crate::storage::layout::Layout;
use crate::storage::quantized::Q8Slab;
use crate::storage::slabs::SlabDevice;

/// An update kernel bound to one parameter set and one optimizer's states.
pub(crate) struct UpdateKernel {
    rule: &'static RuleShader,
    /// The element type of the rule's states.
    states_storage: StateStorage,
    /// Bit k: state slot k is sparse ([`UpdateBindings::sparse`]).
    sparse_mask: u8,
    /// Per slab, its compact-block table when some slot is sparse.
    sparse: Vec<wgpu::Buffer>,
    /// The rule's group table (in the optimizer's options buffer), written in stream with
    /// the options before each step.
    table: BufferPart,
    /// Per slab, its block→group table (fixed: a tensor never changes group).
    blocks: Vec<wgpu::Buffer>,
    /// Per slab, its shape bits: `SHAPE_GROUP_GATHER` unless every block of the slab is in
    /// group 0; for a factored rule the `SHAPE_FACTOR_*` of its tensors' kinds.
    gather: Vec<u32>,
    /// Per state slot of the rule, its per-slab bindings, or a one-vec4 placeholder when
    /// unused (writable bindings must not alias, so each slot has its own).
    states: Vec<Result<Vec<Binding>, wgpu::Buffer>>,
    step_state: wgpu::Buffer,
    group_bias: wgpu::Buffer,
    groups: BindCache,
    /// LARS and LAMB: the trust pass and its per-slab bind groups.
    trust: Option<(Trust, BindCache)>,
    /// 8-bit states: per slab its row table and row count, and the maps table.
    q8: Option<Q8Tables>,
    /// Adafactor: its row and column reductions and their per-slab bind groups.
    factor: Option<(Factor, BindCache)>,
    /// Muon: the Newton–Schulz iteration of every matrix, between the fold and the update.
    ortho: Option<Ortho>,
}

/// The tables an 8-bit update binds besides its states.
struct Q8Tables {
    /// Per slab, its row table (`crate::storage::quantized`), at binding 17.
    rows: Vec<wgpu::Buffer>,
    /// Per slab, its rows: the grid is a workgroup per `WORKGROUP_SIZE / 64` rows.
    counts: Vec<u32>,
    /// The maps and their bounds (`crate::kernels::q8::maps_table`), at binding 18.
    maps: wgpu::Buffer,
}

/// What an update kernel binds besides each slab's own bindings and tables.
pub(crate) struct UpdateBindings<'a> {
    /// The rule's states in slot order; `None`: a slot the rule declares but this
    /// configuration does not use (e.g. `max_exp_avg_sq` without amsgrad).
    pub states: &'a [Option<Arena>],
    /// The step state the finalize writes.
    pub step_state: &'a wgpu::Buffer,
    /// Where the rule's group table lives: a uniform array of `MAX_GROUPS` rows
    /// ([`crate::kernels::norm::NormWorkspace::group_table`]).
    pub group_table: BufferPart,
    /// Per slab, its block→group table (`optim::groups::block_tables`).
    pub blocks: &'a [Vec<u32>],
    /// Per group, Adam's bias corrections (bound at 9 by the kernels that declare it).
    pub group_bias: &'a wgpu::Buffer,
    /// The trust pass of a trust-ratio rule (LARS, LAMB).
    pub trust: Option<TrustSetup<'a>>,
    /// The element type of the states (bf16 only where the rule's registry entry allows).
    pub states_storage: StateStorage,
    /// Bit k: state slot k is sparse, its arena holding only the blocks of the groups that
    /// keep it; then, per slab, the compact-block table (one column per sparse slot, in
    /// slot order: `optim::groups::sparse_tables`).
    pub sparse: (u8, &'a [Vec<u32>]),
    /// With 8-bit states ([`StateStorage::Q8`]), each slab's rows.
    pub q8: Option<&'a [Q8Slab]>,
    /// With factored states ([`StateStorage::Factored`]), their layout and tables.
    pub factored: Option<&'a FactorLayout>,
    /// A rule of matrices (`RuleShader::matrices`): per tensor, its Newton–Schulz settings
    /// and learning-rate adjustment.
    pub matrices: Option<&'a [(NewtonSchulz, MuonLrAdjust)]>,
}

impl UpdateKernel {
    /// The update of `rule` over `slabs`, its group table's first contents `table_bytes`
    /// (the groups' rows). [`crate::Error::DeviceLimits`] when a slab's kernel (or trust
    /// pass) binds more storage buffers than the device allows.
    pub(crate) fn new(
        gpu: &Gpu, layout: &Layout, slabs: &[Arc<SlabDevice>], rule: &'static RuleShader,
        table_bytes: &[u8], b: &UpdateBindings<'_>,
    ) -> Result<UpdateKernel> {
        let mut gather: Vec<u32> = b.blocks.iter().map(|t| slab_gather(t)).collect();
        if let Some(factors) = b.factored {
            for (shape, kinds) in gather.iter_mut().zip(factors.slab_kinds(layout)) {
                *shape |= kinds;
            }
        }
        // Each slab's kernels, checked against the device's limits and compiled now (in the
        // shape of a step that takes no option's path: the slab's own shape bits; other
        // shapes on first use), so the first step builds nothing.
        for (s, slab) in slabs.iter().enumerate() {
            let key = |body| {
                let kernel = slab.kernel(body).with_states(b.states_storage);
                kernel.with_sparse(b.sparse.0)
            };
            let mut kernels = vec![key(Body::Update(rule))];
            if rule.trust.is_some() {
                kernels.extend([key(Body::Trust(rule)), KernelKey::from(Body::Fold(rule))]);
            }
            if let Some(factors) = b.factored {
                kernels.extend([
                    KernelKey::from(Body::FactorFold(rule)),
                    KernelKey::from(Body::FactorMeans(rule)),
                ]);
                if !factors.pieces[s].is_empty() {
                    kernels.push(slab.kernel(Body::FactorPartials(rule)));
                }
            }
            if rule.matrices {
                kernels.extend([
                    KernelKey::from(Body::Matmul),
                    KernelKey::from(Body::NsScale),
                ]);
            }
            for kernel in kernels {
                gpu.check_binds(kernel)?;
                // The shape of a step with no option's path: the slab's own bits.
                gpu.pipelines.get(kernel.shaped(gather[s]));
            }
        }
        // Only the optimizer's groups' rows are written.
        let table = b.group_table.clone();
        gpu.queue
            .write_buffer(&table.buffer, table.offset, table_bytes);
        let blocks = table_buffers(gpu, "block groups", b.blocks);
        let sparse = table_buffers(gpu, "sparse state blocks", b.sparse.1);
        let states = (0..rule.state_slots)
            .map(|k| match b.states.get(k) {
                Some(Some(Arena::Gpu(bindings))) => Ok(bindings.clone()),
                _ => Err(gpu.storage("unused state", 16)),
            })
            .collect();
        let q8 = b.q8.map(|slabs| {
            let rows: Vec<Vec<u32>> = slabs
                .iter()
                .map(|s| s.rows.iter().flatten().copied().collect())
                .collect();
            let table = crate::kernels::q8::maps_table();
            let maps = gpu.storage("q8 maps", table.len() as u64 * 4);
            gpu.queue
                .write_buffer(&maps, 0, bytemuck::cast_slice(&table));
            Q8Tables {
                rows: table_buffers(gpu, "q8 rows", &rows),
                counts: slabs.iter().map(Q8Slab::row_count).collect(),
                maps,
            }
        });
        let factor = b.factored.map(|factors| {
            let bias = b.group_bias;
            let factor = Factor::new(gpu, factors, rule, b.states, b.step_state, &table, bias);
            (factor, BindCache::new(blocks.len()))
        });
        let ortho = b.matrices.map(|m| Ortho::new(gpu, layout, m)).transpose()?;
        let trust = b.trust.as_ref().map(|setup| {
            // A factored rule's ratio reads the step and each tensor's size; Muon's, each
            // tensor's learning-rate factor.
            let extra = match (&factor, &ortho) {
                (Some((f, _)), _) => vec![
                    (5, whole(b.step_state)),
                    (9, whole(b.group_bias)),
                    (20, whole(&f.tensors)),
                ],
                (None, Some(o)) => vec![(26, whole(&o.tensors))],
                (None, None) => Vec::new(),
            };
            let trust = Trust::new(gpu, layout, rule, setup, &table, extra);
            (trust, BindCache::new(blocks.len()))
        });
        Ok(UpdateKernel {
            rule,
            states_storage: b.states_storage,
            sparse_mask: b.sparse.0,
            sparse,
            table,
            trust,
            groups: BindCache::new(blocks.len()),
            blocks,
            gather,
            states,
            step_state: b.step_state.clone(),
            group_bias: b.group_bias.clone(),
            q8,
            factor,
            ortho,
        })
    }

    /// The kernel of `body` (the update or the trust pass) for `slab`: its access and
    /// addressing, and the rule's state storage.
    fn kernel_for(&self, body: Body, slab: &SlabDevice) -> KernelKey {
        if let Body::FactorPartials(_) = body {
            // The reductions read gradients only: no states part.
            return slab.kernel(body);
        }
        let kernel = slab.kernel(body).with_states(self.states_storage);
        kernel.with_sparse(self.sparse_mask)
    }

    /// Slab `s`'s bind group of `kernel` (the update, or a trust pass) for the slab as it
    /// is now: the update bindings, and whatever of the trust pass the kernel declares.
    fn bind_group(
        &self, gpu: &Gpu, kernel: KernelKey, s: usize, slab: &SlabDevice,
    ) -> wgpu::BindGroup {
        // Every binding an update or trust kernel may declare; each kernel keeps those its
        // source declares (the shared-buffer access has no grads binding, only Adam-like
        // rules read the bias corrections).
        let mut entries = vec![(0, slab.params.resource()), (1, slab.grads.resource())];
        for (k, state) in self.states.iter().enumerate() {
            let resource = match state {
                Ok(bindings) => bindings[s].resource(),
                Err(placeholder) => whole(placeholder),
            };
            entries.push((2 + k as u32, resource));
        }
        entries.extend([
            (5, whole(&self.step_state)),
            (6, self.table.resource()),
            (7, whole(&slab.uniform)),
            (8, whole(&self.blocks[s])),
            (9, whole(&self.group_bias)),
        ]);
        // A 16-bit slab with master weights: the 16-bit model copy the update writes.
        if let Some(model) = &slab.model {
            entries.push((15, model.resource()));
        }
        if let Some(table) = self.sparse.get(s) {
            entries.push((16, whole(table)));
        }
        if let Some(q8) = &self.q8 {
            entries.extend([(17, whole(&q8.rows[s])), (18, whole(&q8.maps))]);
        }
        if let Some((factor, _)) = &self.factor {
            entries.extend([
                (19, whole(&factor.pieces[s])),
                (20, whole(&factor.tensors)),
                (21, whole(&factor.partials)),
                (22, whole(&factor.means)),
            ]);
        }
        if let Some(ortho) = &self.ortho {
            entries.extend([(26, whole(&ortho.tensors)), (27, whole(&ortho.plan.work))]);
        }
        if let Some((trust, _)) = &self.trust {
            entries.extend([
                (11, whole(&trust.ratios)),
                (12, whole(&trust.block_tensor[s])),
                (13, whole(trust.chunks(s, slab))),
                (14, whole(&trust.partials)),
            ]);
        }
        let entries = crate::kernels::shaders::declared(kernel, entries);
        gpu.bind_group_at(kernel, &slab.with_places(kernel, entries))
    }

    /// Records the update over every slab (after the trust pass and fold of a trust rule),
    /// with the paths of step shape `shape` compiled in (`PipelineKey::shaped`).
    pub(crate) fn encode(
        &self, pass: &mut wgpu::ComputePass<'_>, gpu: &Gpu, layout: &Layout,
        slabs: &[Arc<SlabDevice>], shape: u32,
    ) {
        let rule = self.rule;
        if let Some((factor, cache)) = &self.factor {
            let pass_key = |slab: &SlabDevice| self.kernel_for(Body::FactorPartials(rule), slab);
            let plan = |s: usize, slab: &SlabDevice| {
                let key = pass_key(slab).shaped(shape | self.gather[s]);
                (key, factor.piece_counts[s])
            };
            cache.encode(pass, gpu, slabs, plan, |s, slab| {
                self.bind_group(gpu, pass_key(slab), s, slab)
            });
            factor.encode_folds(pass, gpu);
        }
        if let Some((trust, cache)) = &self.trust {
            let pass_key = |slab: &SlabDevice| self.kernel_for(Body::Trust(rule), slab);
            let plan = |s: usize, slab: &SlabDevice| {
                let key = pass_key(slab).shaped(shape | self.gather[s]);
                (key, layout.chunks[s].len() as u32)
            };
            cache.encode(pass, gpu, slabs, plan, |s, slab| {
                self.bind_group(gpu, pass_key(slab), s, slab)
            });
            // The norm's per-tensor fold's grid: a workgroup per big tensor, then one per
            // WORKGROUP_SIZE tensors.
            gpu.dispatch(
                pass,
                Body::Fold(rule),
                &trust.fold_group,
                layout.fold_groups(),
            );
        }
        if let Some(ortho) = &self.ortho {
            ortho.plan.encode(gpu, pass);
        }
        let update_key = |slab: &SlabDevice| self.kernel_for(Body::Update(rule), slab);
        let plan = |s: usize, slab: &SlabDevice| {
            let size = match &self.q8 {
                // An 8-bit update: a workgroup per WORKGROUP_SIZE / 64 rows.
                Some(q8) => q8.counts[s].div_ceil(crate::consts::WORKGROUP_SIZE / 64),
                None => elementwise_groups(layout.slabs[s].len),
            };
            (update_key(slab).shaped(shape | self.gather[s]), size)
        };
        self.groups.encode(pass, gpu, slabs, plan, |s, slab| {
            self.bind_group(gpu, update_key(slab), s, slab)
        });
    }
}

/// One storage buffer per slab holding its table of `tables` (at least one word).
fn table_buffers(gpu: &Gpu, label: &str, tables: &[Vec<u32>]) -> Vec<wgpu::Buffer> {
    tables
        .iter()
        .map(|t| {
            let buffer = gpu.storage(label, (t.len().max(1) * 4) as u64);
            gpu.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(t));
            buffer
        })
        .collect()
}

/// `SHAPE_GROUP_GATHER` for a slab with block table `table` (`optim::groups::block_tables`),
/// unless every block of it is in group 0: its first entry says the table is uniform, and
/// holds group 0.
fn slab_gather(table: &[u32]) -> u32 {
    use crate::kernels::abi::{BLOCK_GROUP_MASK, BLOCK_SLAB_UNIFORM};
    match table.first() {
        Some(&head) if head & BLOCK_SLAB_UNIFORM != 0 && head & BLOCK_GROUP_MASK == 0 => 0,
        _ => SHAPE_GROUP_GATHER,
    }
}
