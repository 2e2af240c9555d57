//! The engine every optimizer type runs on: its states, the device step state, and one
//! step recorded as `write options → norm passes → finalize → update` in one compute pass,
//! or run by the CPU backend. Its other concerns have files of their own: the loss scaler
//! (`scaler.rs`), checkpoint I/O (`checkpoint_io.rs`) and the object-safe operations the
//! optimizer handles reach (`ops.rs`).

use std::sync::Arc;

use super::declare::FieldChecks;
use super::groups::{self, ParamGroup};
use super::{RuleConfig, StepOptions, TensorStep};
use crate::device::context::{Context, Gpu};
use crate::device::memory;
use crate::dtype::{Dtype, Rounding};
use crate::error::{Error, Result};
use crate::kernels::abi::{
    DeviceStepState, GroupSchedule, NormOp, SOURCE_COMPUTED, SOURCE_GIVEN, SOURCE_NONE, STATE_SALT,
};
use crate::kernels::host;
use crate::kernels::norm::{base_op, op_block, NormWorkspace};
use crate::kernels::shaders::{RuleShader, StateStorage, SHAPE_VALUE_CLIP};
use crate::kernels::trust::TrustSetup;
use crate::kernels::update::{UpdateBindings, UpdateKernel};
use crate::optim::loss_scale::LossScaler;
use crate::options::{Nonfinite, Norm};
use crate::reference::{MuonLrAdjust, NewtonSchulz};
use crate::report::Report;
use crate::shard::ShardPartial;
use crate::storage::arena::{sparse_state_arena, state_arena, write_all, Arena, UNKEPT};
use crate::storage::factored::FactorLayout;
use crate::storage::layout::Layout;
use crate::storage::param_set::ParamSet;
use crate::storage::quantized;

mod checkpoint_io;
mod ops;
mod scaler;

pub(crate) use crate::kernels::abi::GroupSchedule as Schedule;
pub(crate) use ops::Ops;

/// A config's learning rate, for the per-group schedules (implemented by `optimizer!`:
/// every rule's config has PyTorch's `lr` field).
pub(crate) trait LearningRate {
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
}

/// A rule's shader and its group-table row, implemented by `rule_kernel!` beside each rule.
pub(crate) trait RuleKernel {
    /// The rule's WGSL (update body, and a trust rule's table and trust body): one
    /// [`RuleShader`] in its `src/optim/rules/<rule>.rs`, run on every access, addressing
    /// and state storage the set and the optimizer ask for.
    const SHADER: &'static RuleShader;
    /// The rule's row of the update kernel's group table (its WGSL struct), as bytes.
    fn uniform(&self) -> Vec<u8>;
}

/// The engine's side of an update rule, implemented by each rule's config (its
/// [`RuleConfig`] is the public side): the GPU shader, its uniform and the shape of the step
/// it compiles.
pub(crate) trait Rule: RuleConfig + LearningRate + RuleKernel + FieldChecks {
    /// Whether PyTorch's per-tensor state for this optimizer holds a `step` (checkpoints
    /// then write `<tensor>.step`).
    const TORCH_STEP: bool = true;
    /// Whether the rule may keep its states in bf16 ([`Engine::new`]'s `state_dtype`): the
    /// rules whose bf16-state updates are held to the reference (Adam, AdamW, NAdam, RAdam).
    const BF16_STATES: bool = false;
    /// PyTorch's constructor checks: by default the declared ones ([`FieldChecks`]); a rule
    /// with more says them all.
    fn validate(&self) -> Result<()> {
        self.check_fields()
    }
    /// `(ln β1, ln β2)` for the finalize's per-group Adam bias corrections, in f64 then
    /// rounded; 0: none (the default, for rules without bias correction).
    fn log_betas(&self) -> [f32; 2] {
        [0.0, 0.0]
    }
    /// What the finalize computes this group's step scalars from (`group_bias`): by
    /// default Adam's bias corrections from [`Rule::log_betas`]; NAdam and RAdam add theirs.
    fn schedule(&self) -> GroupSchedule {
        let [log_beta1, log_beta2] = self.log_betas();
        GroupSchedule {
            log_beta1,
            log_beta2,
            ..Default::default()
        }
    }
    /// The option-dependent paths of the update kernel this group takes (the `SHAPE_*`
    /// bits of `crate::kernels::shaders` but `SHAPE_VALUE_CLIP`, which comes from the step's
    /// options); the step compiles in those of every group (`PipelineKey::shaped`).
    /// 0: none (the rules whose kernels have no such path).
    fn shape(&self) -> u32 {
        0
    }
    /// For a rule with 8-bit states (`RuleShader::q8`): whether a tensor of `numel`
    /// elements keeps them 8-bit (else f32, bitsandbytes' `min_8bit_size`).
    fn quantizes(&self, _numel: u64) -> bool {
        true
    }
    /// For a rule of matrices (`RuleShader::matrices`): its Newton–Schulz settings and
    /// learning-rate adjustment, which the device's plan holds from the optimizer's
    /// creation (a checkpoint with other ones is refused).
    fn orthogonalization(&self) -> Option<(NewtonSchulz, MuonLrAdjust)> {
        None
    }
}

/// The device half of an optimizer.
struct EngineDevice {
    gpu: Arc<Gpu>,
    workspace: NormWorkspace,
    update: UpdateKernel,
}

/// A fused optimizer with rule `R`.
pub(crate) struct Engine<R: Rule> {
    ctx: Context,
    set_id: u64,
    layout: Arc<Layout>,
    /// The parameter groups (one, of every tensor, unless the caller gave several).
    pub groups: Vec<ParamGroup<R>>,
    /// The group of each tensor.
    group_of: Vec<u32>,
    /// Per tensor, 1 when it counts in the global norm.
    in_norm: Vec<u32>,
    states: [Option<Arena>; 3],
    device: Option<EngineDevice>,
    /// The CPU backend's step state (the device keeps its own in the workspace).
    host_state: DeviceStepState,
    /// The dynamic loss scaler's settings (its state is in the step state).
    pub scaler: Option<LossScaler>,
    /// The element type of the rule's states.
    state_dtype: Dtype,
    /// Bytes the states take on the device (`States::bytes`).
    state_bytes: u64,
    /// With 8-bit states on a device, each slab's rows (`crate::storage::quantized`).
    q8: Option<Vec<quantized::Q8Slab>>,
    /// With factored states on a device, their layout (`crate::storage::factored`).
    factored: Option<FactorLayout>,
}

impl<R: Rule> Engine<R> {
    /// An engine over `params` with `groups`, keeping its states in `state_dtype` (f32, or
    /// bf16 for the Adam family).
    pub(crate) fn new(
        params: &ParamSet, groups: Vec<ParamGroup<R>>, state_dtype: Dtype,
    ) -> Result<Self> {
        // A rule declared with 8-bit states keeps them 8-bit on a device (the CPU backend
        // holds their dequantized values in f32).
        let q8 = R::SHADER.q8 && params.ctx.gpu().is_some();
        // Likewise factored states (the CPU backend holds them one value per element).
        let factored = R::SHADER.factored && params.ctx.gpu().is_some();
        let states_storage = match state_dtype {
            Dtype::F32 if q8 => StateStorage::Q8,
            Dtype::F32 if factored => StateStorage::Factored,
            Dtype::F32 => StateStorage::F32,
            Dtype::Bf16 if R::BF16_STATES => StateStorage::Bf16,
            _ => {
                return Err(Error::NotSupported(format!(
                    "{} with {state_dtype:?} states (bf16 states are the Adam family's: Adam, \
                     AdamW, NAdam, RAdam)",
                    R::NAME
                )))
            }
        };
        let layout = params.layout.clone();
        let group_of = groups::assign(&layout, &groups)?;
        for group in &groups {
            group.config.validate()?;
        }
        // A rule of matrices refuses any other tensor, on either backend.
        if R::MATRICES {
            crate::storage::ortho::matrix_shapes(&layout)?;
        }
        let per_tensor: Vec<(NewtonSchulz, MuonLrAdjust)> = group_of
            .iter()
            .map(|&g| {
                groups[g as usize]
                    .config
                    .orthogonalization()
                    .unwrap_or_default()
            })
            .collect();
        let in_norm = groups::norm_mask(&group_of, &groups);
        let q8_slabs = match q8 {
            true => Some(quantized::q8_slabs(&layout, |t| {
                let config = &groups[group_of[t] as usize].config;
                !config.quantizes(layout.tensors[t].numel)
            })?),
            false => None,
        };
        let factor_layout = match factored {
            true => Some(FactorLayout::new(&layout, &group_of)?),
            false => None,
        };
        let blocks = groups::block_tables(&layout, &group_of, &groups);
        // Each state slot is dense (every group keeps it), sparse (some groups: their
        // blocks only, `groups::compact_blocks`) or absent.
        let names = slot_names(&groups);
        let mut compact: [Option<Vec<Vec<u32>>>; 3] = std::array::from_fn(|k| {
            let keeps: Vec<bool> = groups
                .iter()
                .map(|g| g.config.state_names()[k].is_some())
                .collect();
            let all = keeps.iter().all(|&x| x);
            (names[k].is_some() && !all).then(|| groups::compact_blocks(&blocks, &keeps))
        });
        // Factored states: a vector's `variance` is kept as a sparse state of the vectors'
        // blocks (`crate::storage::factored`).
        if factor_layout.is_some() {
            compact[2] = Some(crate::storage::factored::variance_blocks(&layout));
        }
        let sparse_mask = (0..3)
            .filter(|&k| compact[k].is_some())
            .fold(0u8, |mask, k| mask | 1 << k);
        let sparse_tables = groups::sparse_tables(&compact.iter().flatten().collect::<Vec<_>>());
        // Elements of f32 the states take (8-bit states: their words).
        let state_elems: u64 = (0..3)
            .map(|k| match (names[k], &compact[k], &q8_slabs) {
                (None, _, _) => 0,
                (Some(_), _, _) if factor_layout.is_some() && k < 2 => {
                    factor_layout.as_ref().map_or(0, |f| f.slot_len[k])
                }
                (Some(_), _, Some(slabs)) => slabs.iter().map(|s| s.words).sum(),
                (Some(_), None, None) => layout.internal_len,
                (Some(_), Some(c), None) => kept_blocks(c) * crate::consts::TENSOR_ALIGN_ELEMS,
            })
            .sum();
        let bytes = memory::optimizer_bytes(
            layout.internal_len,
            state_elems,
            layout.tensors.len() as u64,
        );
        memory::reserve(params.ctx.gpu().map(|g| &**g), "this optimizer", bytes)?;
        let new_states = || -> [Option<Arena>; 3] {
            std::array::from_fn(|k| {
                let name = names[k]?;
                if let (Some(slabs), Some(gpu)) = (&q8_slabs, params.ctx.gpu()) {
                    return Some(quantized::state_arena(gpu, slabs, k, name));
                }
                if let (Some(f), Some(gpu), true) = (&factor_layout, params.ctx.gpu(), k < 2) {
                    return Some(f.state_arena(gpu, &layout, k, name));
                }
                Some(match &compact[k] {
                    None => state_arena(&params.ctx, &layout, name, state_dtype),
                    Some(c) => sparse_state_arena(&params.ctx, &layout, name, state_dtype, c),
                })
            })
        };
        let (states, device) = match &params.device {
            // Every allocation in the call's error scope: too little memory is a typed
            // error, not a lost device.
            Some(set) => memory::refused(
                set.gpu.scoped(|| {
                    let gpu = &set.gpu;
                    let states = new_states();
                    // A uniform array of MAX_GROUPS rows, after the step's options.
                    let row_bytes = groups[0].config.uniform().len() as u64;
                    let table_len = u64::from(crate::consts::MAX_GROUPS) * row_bytes;
                    let workspace =
                        NormWorkspace::new(gpu, &layout, &set.fold, groups.len(), table_len);
                    gpu.queue
                        .write_buffer(&workspace.in_norm, 0, bytemuck::cast_slice(&in_norm));
                    let schedules = group_schedules(groups.iter().map(|g| &g.config));
                    let (buffer, at, bytes) = workspace.schedule_write(&schedules);
                    gpu.queue.write_buffer(buffer, at, bytes);
                    let trust = R::SHADER.trust.map(|_| TrustSetup {
                        ranges: &set.fold.ranges,
                        big_tensors: &set.fold.big_tensors,
                        op: &workspace.op,
                        tensor_group: &group_of,
                    });
                    let update = UpdateKernel::new(
                        gpu,
                        &layout,
                        params.device_slabs(),
                        R::SHADER,
                        &group_table(&groups),
                        &UpdateBindings {
                            states: &states,
                            step_state: &workspace.state,
                            group_table: workspace.group_table(),
                            blocks: &blocks,
                            group_bias: &workspace.group_bias,
                            trust,
                            states_storage,
                            sparse: (sparse_mask, &sparse_tables),
                            q8: q8_slabs.as_deref(),
                            factored: factor_layout.as_ref(),
                            matrices: R::SHADER.matrices.then_some(&per_tensor[..]),
                        },
                    )?;
                    let device = EngineDevice {
                        gpu: gpu.clone(),
                        workspace,
                        update,
                    };
                    Ok((states, Some(device)))
                }),
                "this optimizer",
                bytes,
            )?,
            None => (new_states(), None),
        };
        let mut engine = Engine {
            ctx: params.ctx.clone(),
            set_id: params.id,
            layout,
            groups,
            group_of,
            in_norm,
            states,
            device,
            host_state: DeviceStepState::initial(),
            scaler: None,
            state_dtype,
            state_bytes: state_elems * state_dtype.size(),
            q8: q8_slabs,
            factored: factor_layout,
        };
        // States that do not start at zero (Adagrad's accumulator) get their groups' values.
        for slot in 0..3 {
            let starts_at_zero = |g: &ParamGroup<R>| g.config.initial_state()[slot] == 0.0;
            if engine.groups.iter().all(starts_at_zero) {
                continue;
            }
            let values = engine.fresh_state(slot);
            if let Some(arena) = engine.states[slot].as_mut() {
                write_all(engine.ctx.gpu(), &engine.layout, arena, &values, "state")?;
            }
        }
        Ok(engine)
    }

    /// State slot `slot` as it starts, all tensors concatenated: each tensor at its group's
    /// [`RuleConfig::initial_state`].
    fn fresh_state(&self, slot: usize) -> Vec<f32> {
        let mut values = Vec::with_capacity(self.layout.numel() as usize);
        for (t, &g) in self.layout.tensors.iter().zip(&self.group_of) {
            let value = self.groups[g as usize].config.initial_state()[slot];
            values.resize(values.len() + t.numel as usize, value);
        }
        values
    }

    fn check_set(&self, params: &ParamSet) -> Result<()> {
        if params.id == self.set_id {
            Ok(())
        } else {
            Err(Error::ParamSetMismatch {
                expected: self.set_id,
                got: params.id,
            })
        }
    }

    /// The finalize options of a step with `options`: the norm is computed when a norm
    /// clip or the non-finite check needs it.
    fn step_op(&self, options: &StepOptions) -> NormOp {
        let norm_clip = options.clip.norm_clip();
        let needs_norm = norm_clip.is_some()
            || options.nonfinite != Nonfinite::Propagate
            || options.skip_above.is_some();
        let source = match options.total_norm {
            Some(_) => SOURCE_GIVEN,
            None if needs_norm => SOURCE_COMPUTED,
            None => SOURCE_NONE,
        };
        // A scaler needs the norm pass's found-inf.
        let source = if self.scaler.is_some() && source == SOURCE_NONE {
            SOURCE_COMPUTED
        } else {
            source
        };
        let scaler = self.scaler.unwrap_or_default();
        let (stochastic, round_seed) = match options.rounding {
            Rounding::NearestEven => (0, 0),
            Rounding::Stochastic { seed } => (1, seed),
        };
        let (max_norm, norm) = norm_clip.unwrap_or((0.0, Norm::L2));
        let (kind, p) = norm.code();
        NormOp {
            scaler: u32::from(self.scaler.is_some()),
            growth_factor: scaler.growth_factor,
            backoff_factor: scaler.backoff_factor,
            growth_interval: scaler.growth_interval,
            hysteresis: scaler.hysteresis,
            stochastic,
            round_seed,
            source,
            given_norm: options.total_norm.unwrap_or(0.0),
            kind,
            p,
            max_norm,
            inv_grad_scale: 1.0 / options.grad_scale,
            clip_value: options.clip.value_clip().unwrap_or(0.0),
            policy: options.nonfinite.code(),
            count_step: 1,
            num_groups: self.groups.len() as u32,
            skip_above: options.skip_above.unwrap_or(0.0),
            ..base_op(&self.layout)
        }
    }

    /// The step options' own checks, and those against this optimizer's scaler and set.
    fn validate(&self, options: &StepOptions) -> Result<()> {
        options.validate()?;
        if self.scaler.is_some()
            && (options.nonfinite != Nonfinite::Skip || options.grad_scale != 1.0)
        {
            return Err(Error::InvalidLossScaler(format!(
                "a step under a loss scaler skips on overflow and unscales by the scaler's \
                 own scale: give it nonfinite = Skip and grad_scale = 1 (got {:?}, {})",
                options.nonfinite, options.grad_scale
            )));
        }
        let has_f16 = self.layout.tensors.iter().any(|t| t.dtype == Dtype::F16);
        if matches!(options.rounding, Rounding::Stochastic { .. }) && has_f16 {
            return Err(Error::NotSupported(
                "stochastic rounding of f16 parameters (bf16 only): this set has f16 tensors; \
                 use NearestEven"
                    .into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn step(&mut self, params: &mut ParamSet, options: &StepOptions) -> Result<Report> {
        let Some(device) = &self.device else {
            self.validate(options)?;
            self.check_set(params)?;
            return Ok(self.host_step(params, options));
        };
        let gpu = device.gpu.clone();
        gpu.submit_atomic(|encoder| self.record_step(encoder, params, options))
            .map(Report::commit)
    }

    pub(crate) fn encode_step(
        &mut self, encoder: &mut wgpu::CommandEncoder, params: &mut ParamSet, options: &StepOptions,
    ) -> Result<Report> {
        let device = self.device.as_ref().ok_or(Error::NeedsGpu("encode_step"))?;
        let gpu = device.gpu.clone();
        let report = gpu
            .scoped(|| self.record_step(encoder, params, options))
            .map(Report::commit)?;
        let ws = &device.workspace;
        params.note_recorded(
            ws.ran(),
            ws.generation.load(std::sync::atomic::Ordering::SeqCst),
        );
        Ok(report)
    }

    /// Validates the options and the set, then records one step (nothing is recorded when
    /// validation fails).
    fn record_step(
        &self, encoder: &mut wgpu::CommandEncoder, params: &ParamSet, options: &StepOptions,
    ) -> Result<Report> {
        self.validate(options)?;
        self.check_set(params)?;
        let op = self.step_op(options);
        let device = self.device.as_ref().ok_or(Error::NeedsGpu("encode_step"))?;
        let (gpu, ws) = (&device.gpu, &device.workspace);
        // The step's options and every group's hyperparameters: one buffer, one copy.
        let block = op_block(&op, ws.next_generation());
        let bytes = ws.step_bytes(&block, &group_table(&self.groups));
        gpu.write_in_stream(encoder, &[ws.op_write(&bytes)])?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(R::NAME),
                timestamp_writes: None,
            });
            let slabs = params.device_slabs();
            ws.encode(&mut pass, gpu, &self.layout, slabs, &op);
            let shape = step_shape(&self.groups, options);
            device
                .update
                .encode(&mut pass, gpu, &self.layout, slabs, shape);
        }
        Ok(Report::gpu(
            gpu,
            ws,
            self.layout.tensors.len(),
            options.nonfinite,
            op.source,
        ))
    }

    /// The CPU backend's twin of [`Engine::encode_step`].
    fn host_step(&mut self, params: &mut ParamSet, options: &StepOptions) -> Report {
        let op = self.step_op(options);
        let (Arena::Cpu(p), Arena::Cpu(g)) = (&mut params.params, &params.grads) else {
            unreachable!("CPU optimizers hold CPU sets")
        };
        let model = &mut params.host_model;
        let (sum, per_tensor) = if op.source == SOURCE_COMPUTED {
            let (sum, per_tensor) =
                host::norm(&self.layout, g, &op, &self.host_state, Some(&self.in_norm));
            (Some(sum), per_tensor)
        } else {
            (None, Vec::new())
        };
        let state = host::finalize(&self.host_state, &op, sum);
        if state.skipped == 0 {
            let unclipped = DeviceStepState {
                clip_coef: 1.0,
                clip_value: 0.0,
                ..state
            };
            // Tensor by tensor, each with its group's hyperparameters (and clip).
            for (t, info) in self.layout.tensors.iter().enumerate() {
                let group = &self.groups[self.group_of[t] as usize];
                let range = info.offset as usize..(info.offset + info.numel) as usize;
                let applied = if group.clipped { &state } else { &unclipped };
                let grads = host::effective_grads(&g[range.clone()], applied);
                let mut states = self.states.each_mut().map(|s| match s {
                    Some(Arena::Cpu(v)) => Some(&mut v[range.clone()]),
                    _ => None,
                });
                // Only the states its group keeps (a sparse state's other tensors stay 0).
                for (state, name) in states.iter_mut().zip(group.config.state_names()) {
                    if name.is_none() {
                        *state = None;
                    }
                }
                group.config.reference_step(
                    state.step,
                    TensorStep {
                        params: &mut p[range.clone()],
                        grads: &grads,
                        shape: &info.shape,
                        states,
                    },
                );
                // What the device writes in 16 bits, rounded as it rounds it.
                let stochastic = (state.stochastic != 0).then_some((state.round_seed, state.step));
                if info.dtype.is_16_bit() {
                    let base = info.offset;
                    if model.is_empty() {
                        host::round16(&mut p[range.clone()], info.dtype, stochastic, base);
                    } else {
                        model[range.clone()].copy_from_slice(&p[range.clone()]);
                        host::round16(&mut model[range.clone()], info.dtype, stochastic, base);
                    }
                }
                if self.state_dtype == Dtype::Bf16 {
                    for (k, state_values) in self.states.iter_mut().enumerate() {
                        if let Some(Arena::Cpu(v)) = state_values {
                            let seed = state.round_seed ^ STATE_SALT.wrapping_mul(k as u32 + 1);
                            let rounding = Some((seed, state.step));
                            host::round16(
                                &mut v[range.clone()],
                                Dtype::Bf16,
                                rounding,
                                info.offset,
                            );
                        }
                    }
                }
            }
        }
        self.host_state = state;
        Report::host(state, per_tensor, options.nonfinite, op.source)
    }

    /// Phase 1 of a sharded norm on rank `rank`: the set's partial over the tensors this
    /// optimizer's groups count there.
    pub(crate) fn norm_partial(
        &self, params: &mut ParamSet, norm: Norm, nonfinite: Nonfinite, rank: usize,
    ) -> Result<ShardPartial> {
        self.check_set(params)?;
        let counted = groups::shard_mask(&self.group_of, &self.groups, rank);
        params.norm_partial_counting(norm, nonfinite, &counted)
    }

    /// Bytes the states take on the device: per state its elements (a dense state the
    /// set's packed length, a sparse one its kept blocks) times the state element size.
    pub(crate) fn state_bytes(&self) -> u64 {
        self.state_bytes
    }

    /// Parameter group `g`.
    pub(crate) fn group(&self, g: usize) -> Result<&ParamGroup<R>> {
        let n = self.groups.len();
        self.groups
            .get(g)
            .ok_or_else(|| Error::InvalidGroups(format!("no group {g}; this optimizer has {n}")))
    }

    /// Parameter group `g`, to change its hyperparameters.
    pub(crate) fn group_mut(&mut self, g: usize) -> Result<&mut ParamGroup<R>> {
        let n = self.groups.len();
        self.groups
            .get_mut(g)
            .ok_or_else(|| Error::InvalidGroups(format!("no group {g}; this optimizer has {n}")))
    }
}

/// Per state slot, its name when some group keeps it (the rule names a slot the same in
/// every group).
pub(crate) fn slot_names<R: Rule>(groups: &[ParamGroup<R>]) -> [Option<&'static str>; 3] {
    std::array::from_fn(|k| groups.iter().find_map(|g| g.config.state_names()[k]))
}

/// Blocks a sparse state keeps, over every slab of its compact tables.
fn kept_blocks(compact: &[Vec<u32>]) -> u64 {
    compact.iter().flatten().filter(|&&b| b != UNKEPT).count() as u64
}

/// Every group's rule struct, in group order: the update kernel's group table.
/// The finalize's per-group step schedules of these configs, as bytes: written when the
/// optimizer is built and when a checkpoint's load replaces the configs (a learning rate
/// changes none).
pub(crate) fn group_schedules<'a, R: Rule + 'a>(configs: impl Iterator<Item = &'a R>) -> Vec<u8> {
    let rows: Vec<GroupSchedule> = configs.map(|c| c.schedule()).collect();
    bytemuck::cast_slice(&rows).to_vec()
}

fn group_table<R: Rule>(groups: &[ParamGroup<R>]) -> Vec<u8> {
    groups.iter().flat_map(|g| g.config.uniform()).collect()
}

/// The update's shape for a step with `options` over `groups`: the paths some group or
/// option takes (a value clip, and each group's [`Rule::shape`]).
fn step_shape<R: Rule>(groups: &[ParamGroup<R>], options: &StepOptions) -> u32 {
    let value_clip = match options.clip.value_clip() {
        Some(_) => SHAPE_VALUE_CLIP,
        None => 0,
    };
    groups
        .iter()
        .fold(value_clip, |shape, g| shape | g.config.shape())
}
