//! The engine every optimizer type runs on: its states, the device step state, and one
//! step recorded as `write options → norm passes → finalize → update` in one compute pass,
//! or run by the CPU backend.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::groups::{self, ParamGroup};
use super::{RuleConfig, StepOptions};
use crate::abi::{DeviceStepState, NormOp, SOURCE_COMPUTED, SOURCE_GIVEN, SOURCE_NONE, STATE_SALT};
use crate::arena::{image_writes, read_all, slab_images, state_arena, write_all, Arena};
use crate::checkpoint::{bad, Checkpoint, LoadOptions, MissingTensors, UnexpectedTensors};
use crate::context::{Context, Gpu};
use crate::dtype::{Dtype, Rounding};
use crate::error::{Error, Result};
use crate::host;
use crate::kernels::norm::{base_op, NormWorkspace};
use crate::kernels::trust::TrustSetup;
use crate::kernels::update::{UpdateBindings, UpdateKernel};
use crate::layout::Layout;
use crate::loss_scale::{check_scale, LossScaler};
use crate::memory;
use crate::options::{Nonfinite, Norm};
use crate::param_set::{gpu_bindings, ParamSet};
use crate::report::Report;
use crate::shaders::{RuleShader, StateStorage, SHAPE_VALUE_CLIP};
use crate::shard::ShardPartial;
use crate::typed_io;

/// An update rule: implemented by each optimizer's config.
/// A config's learning rate, for the per-group schedules (implemented by `optimizer!`:
/// every rule's config has PyTorch's `lr` field).
pub(crate) trait LearningRate {
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
}

pub(crate) trait Rule: RuleConfig + LearningRate {
    /// Whether PyTorch's per-tensor state for this optimizer holds a `step` (checkpoints
    /// then write `<tensor>.step`).
    const TORCH_STEP: bool = true;
    /// The rule's WGSL (update body, and a trust rule's table and trust body): one
    /// [`RuleShader`] in its `src/optim/rules/<rule>.rs`, run on every access, addressing
    /// and state storage the set and the optimizer ask for.
    const SHADER: &'static RuleShader;
    /// Whether the rule may keep its states in bf16 ([`Engine::new`]'s `state_dtype`): the
    /// rules whose bf16-state updates are held to the reference (Adam, AdamW).
    const BF16_STATES: bool = false;
    /// PyTorch's constructor checks.
    fn validate(&self) -> Result<()>;
    /// `(ln β1, ln β2)` for the finalize's per-group Adam bias corrections, in f64 then
    /// rounded; 0: none (the default, for rules without bias correction).
    fn log_betas(&self) -> [f32; 2] {
        [0.0, 0.0]
    }
    /// The rule's row of the update kernel's group table (its WGSL struct), as bytes.
    fn uniform(&self) -> Vec<u8>;
    /// The option-dependent paths of the update kernel this group takes (the `SHAPE_*`
    /// bits of `crate::shaders` but `SHAPE_VALUE_CLIP`, which comes from the step's
    /// options); the step compiles in those of every group (`PipelineKey::shaped`).
    /// 0: none (the rules whose kernels have no such path).
    fn shape(&self) -> u32 {
        0
    }
}

/// What the optimizer handles ([`super::handles`]) reach through a `dyn Optimizer`: the
/// engine's non-step operations, object safe, implemented once for every rule.
pub(crate) trait Ops {
    /// The rule's name (error messages).
    fn name(&self) -> &'static str;
    fn num_groups(&self) -> usize;
    fn group_learning_rate(&self, group: usize) -> Result<f64>;
    fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> Result<()>;
    fn state_names(&self) -> Vec<&'static str>;
    fn state(&self, name: &str) -> Result<Vec<f32>>;
    fn step_count(&self) -> Result<u32>;
    fn save(&self) -> Result<Vec<u8>>;
    fn load(&mut self, bytes: &[u8], options: &LoadOptions) -> Result<()>;
    fn set_loss_scaler(&mut self, scaler: Option<LossScaler>) -> Result<()>;
    fn loss_scaler(&self) -> Option<LossScaler>;
    fn set_loss_scale(&mut self, scale: f32) -> Result<()>;
    fn loss_scale(&self) -> Result<f32>;
    fn loss_scale_binding(&self) -> Option<(&wgpu::Buffer, u64)>;
}

impl<R: Rule> Ops for Engine<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn num_groups(&self) -> usize {
        self.groups.len()
    }
    fn group_learning_rate(&self, group: usize) -> Result<f64> {
        Ok(self.group(group)?.config.lr())
    }
    fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> Result<()> {
        self.group_mut(group)?.config.set_lr(lr);
        Ok(())
    }
    fn state_names(&self) -> Vec<&'static str> {
        self.groups[0]
            .config
            .state_names()
            .into_iter()
            .flatten()
            .collect()
    }
    fn state(&self, name: &str) -> Result<Vec<f32>> {
        Engine::state(self, name)
    }
    fn step_count(&self) -> Result<u32> {
        Engine::step_count(self)
    }
    fn save(&self) -> Result<Vec<u8>> {
        Engine::save(self)
    }
    fn load(&mut self, bytes: &[u8], options: &LoadOptions) -> Result<()> {
        Engine::load(self, bytes, options)
    }
    fn set_loss_scaler(&mut self, scaler: Option<LossScaler>) -> Result<()> {
        Engine::set_loss_scaler(self, scaler)
    }
    fn loss_scaler(&self) -> Option<LossScaler> {
        self.scaler
    }
    fn set_loss_scale(&mut self, scale: f32) -> Result<()> {
        Engine::set_loss_scale(self, scale)
    }
    fn loss_scale(&self) -> Result<f32> {
        Engine::loss_scale(self)
    }
    fn loss_scale_binding(&self) -> Option<(&wgpu::Buffer, u64)> {
        Engine::loss_scale_binding(self)
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
}

/// A checkpoint's loss scaler: its settings and where its state stood.
#[derive(Serialize, serde::Deserialize)]
struct SavedScaler {
    config: LossScaler,
    scale: f32,
    growth_tracker: u32,
    hysteresis_left: u32,
}

impl<R: Rule> Engine<R> {
    /// An engine over `params` with `groups`, keeping its states in `state_dtype` (f32, or
    /// bf16 for the Adam family).
    pub(crate) fn new(
        params: &ParamSet,
        groups: Vec<ParamGroup<R>>,
        state_dtype: Dtype,
    ) -> Result<Self> {
        let states_storage = match state_dtype {
            Dtype::F32 => StateStorage::F32,
            Dtype::Bf16 if R::BF16_STATES => StateStorage::Bf16,
            _ => {
                return Err(Error::NotSupported(format!(
                    "{} with {state_dtype:?} states (bf16 states are Adam's and AdamW's)",
                    R::NAME
                )))
            }
        };
        let layout = params.layout.clone();
        let group_of = groups::assign(&layout, &groups)?;
        let config = &groups[0].config;
        for (g, group) in groups.iter().enumerate() {
            group.config.validate()?;
            if group.config.state_names() != config.state_names() {
                return Err(Error::InvalidGroups(format!(
                    "group {g} keeps states {:?}, group 0 keeps {:?}: groups may differ in \
                     any hyperparameter but amsgrad, zero/non-zero momentum and centered",
                    group.config.state_names(),
                    config.state_names()
                )));
            }
        }
        let in_norm = groups::norm_mask(&group_of, &groups);
        let blocks = groups::block_tables(&layout, &group_of, &groups);
        let slots = config.state_names().iter().flatten().count() as u64;
        let bytes =
            memory::optimizer_bytes(layout.internal_len, slots, layout.tensors.len() as u64);
        memory::reserve(params.ctx.gpu().map(|g| &**g), "this optimizer", bytes)?;
        let new_states = || {
            config
                .state_names()
                .map(|name| name.map(|n| state_arena(&params.ctx, &layout, n, state_dtype)))
        };
        let (states, device) = match &params.device {
            // Every allocation in the call's error scope: too little memory is a typed
            // error, not a lost device.
            Some(set) => set.gpu.scoped(|| {
                let gpu = &set.gpu;
                let states = new_states();
                let log_betas: Vec<[f32; 2]> =
                    groups.iter().map(|g| g.config.log_betas()).collect();
                let workspace = NormWorkspace::new(gpu, &layout, &set.fold, &log_betas);
                gpu.queue
                    .write_buffer(&workspace.in_norm, 0, bytemuck::cast_slice(&in_norm));
                let trust = R::SHADER.trust.map(|_| TrustSetup {
                    ranges: &set.fold.ranges,
                    op: &workspace.op,
                    tensor_group: &group_of,
                });
                let update = UpdateKernel::new(
                    gpu,
                    &layout,
                    params.device_slabs(),
                    R::SHADER,
                    &group_table(&groups),
                    groups[0].config.uniform().len(),
                    &UpdateBindings {
                        states: &states,
                        step_state: &workspace.state,
                        blocks: &blocks,
                        group_bias: &workspace.group_bias,
                        trust,
                        states_storage,
                    },
                )?;
                let device = EngineDevice {
                    gpu: gpu.clone(),
                    workspace,
                    update,
                };
                Ok((states, Some(device)))
            })?,
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
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        params: &mut ParamSet,
        options: &StepOptions,
    ) -> Result<Report> {
        let device = self.device.as_ref().ok_or(Error::NeedsGpu("encode_step"))?;
        let gpu = device.gpu.clone();
        gpu.scoped(|| self.record_step(encoder, params, options))
            .map(Report::commit)
    }

    /// Validates the options and the set, then records one step (nothing is recorded when
    /// validation fails).
    fn record_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        params: &ParamSet,
        options: &StepOptions,
    ) -> Result<Report> {
        self.validate(options)?;
        self.check_set(params)?;
        let op = self.step_op(options);
        let device = self.device.as_ref().ok_or(Error::NeedsGpu("encode_step"))?;
        let (gpu, ws) = (&device.gpu, &device.workspace);
        // The step's options and every group's hyperparameters, from one upload buffer.
        let table = group_table(&self.groups);
        gpu.write_in_stream(
            encoder,
            &[ws.op_write(&op), device.update.table_write(&table)],
        )?;
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
            let (sum, per_tensor) = host::norm(&self.layout, g, &op, Some(&self.in_norm));
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
                let states = self.states.each_mut().map(|s| match s {
                    Some(Arena::Cpu(v)) => Some(&mut v[range.clone()]),
                    _ => None,
                });
                group
                    .config
                    .reference_step(state.step, &mut p[range.clone()], &grads, states);
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
        &self,
        params: &mut ParamSet,
        norm: Norm,
        nonfinite: Nonfinite,
        rank: usize,
    ) -> Result<ShardPartial> {
        self.check_set(params)?;
        let counted = groups::shard_mask(&self.group_of, &self.groups, rank);
        params.norm_partial_counting(norm, nonfinite, &counted)
    }

    /// Turns the loss scaler on or off (see [`crate::LossScaling::set_scaler`]).
    pub(crate) fn set_loss_scaler(&mut self, scaler: Option<LossScaler>) -> Result<()> {
        if let Some(s) = &scaler {
            s.validate()?;
        }
        let init = scaler.map_or(1.0, |s| s.init_scale);
        let hysteresis = scaler.map_or(0, |s| s.hysteresis);
        self.write_scale_state(init, 0, hysteresis)?;
        self.scaler = scaler;
        Ok(())
    }

    /// Sets the current scale, trackers kept.
    pub(crate) fn set_loss_scale(&mut self, scale: f32) -> Result<()> {
        if self.scaler.is_none() {
            return Err(Error::InvalidLossScaler(
                "no loss scaler is set: loss_scaling().set_scaler(Some(..)) first".into(),
            ));
        }
        check_scale(scale)?;
        let st = self.read_state()?;
        self.write_scale_state(scale, st.growth_tracker, st.hysteresis_left)
    }

    pub(crate) fn loss_scale(&self) -> Result<f32> {
        Ok(self.read_state()?.loss_scale)
    }

    pub(crate) fn loss_scale_binding(&self) -> Option<(&wgpu::Buffer, u64)> {
        let offset = std::mem::offset_of!(DeviceStepState, loss_scale) as u64;
        self.device.as_ref().map(|d| (&d.workspace.state, offset))
    }

    /// Writes the scaler's three words of the step state (queued before the next step).
    fn write_scale_state(&mut self, scale: f32, growth: u32, hysteresis: u32) -> Result<()> {
        self.host_state.loss_scale = scale;
        self.host_state.growth_tracker = growth;
        self.host_state.hysteresis_left = hysteresis;
        if let Some(d) = &self.device {
            let words = [scale.to_bits(), growth, hysteresis];
            let offset = std::mem::offset_of!(DeviceStepState, loss_scale) as u64;
            d.gpu
                .upload(&[(&d.workspace.state, offset, bytemuck::cast_slice(&words))])?;
        }
        Ok(())
    }

    pub(crate) fn state(&self, name: &str) -> Result<Vec<f32>> {
        let names = self.groups[0].config.state_names();
        let unknown = || Error::UnknownState {
            name: name.to_string(),
            available: names.iter().flatten().copied().collect(),
        };
        let k = names
            .iter()
            .position(|n| *n == Some(name))
            .ok_or_else(unknown)?;
        // Named states are allocated with the optimizer, and `load` keeps the same names.
        let arena = self.states[k].as_ref().ok_or_else(unknown)?;
        self.read_state_arena(arena)
    }

    /// A state's values, all tensors concatenated (bf16 states widened exactly).
    fn read_state_arena(&self, arena: &Arena) -> Result<Vec<f32>> {
        match (self.state_dtype, arena, self.ctx.gpu()) {
            (Dtype::Bf16, Arena::Gpu(bindings), Some(gpu)) => {
                typed_io::read_values(gpu, &self.layout, &bf16_targets(bindings), None)
            }
            _ => read_all(self.ctx.gpu(), &self.layout, arena, "state"),
        }
    }

    pub(crate) fn step_count(&self) -> Result<u32> {
        Ok(self.read_state()?.step)
    }

    fn read_state(&self) -> Result<DeviceStepState> {
        match &self.device {
            Some(d) => {
                let size = std::mem::size_of::<DeviceStepState>() as u64;
                let bytes = d.gpu.read_blocking(&[(&d.workspace.state, 0, size)])?;
                Ok(bytemuck::pod_read_unaligned(&bytes))
            }
            None => Ok(self.host_state),
        }
    }

    pub(crate) fn save(&self) -> Result<Vec<u8>> {
        let numels: Vec<usize> = self
            .layout
            .tensors
            .iter()
            .map(|t| t.numel as usize)
            .collect();
        let states = self.groups[0]
            .config
            .state_names()
            .iter()
            .zip(&self.states)
            .filter_map(|(name, arena)| Some((name.as_ref()?, arena.as_ref()?)))
            .map(|(name, arena)| {
                let all = self.read_state_arena(arena)?;
                let mut at = 0;
                let parts = numels
                    .iter()
                    .map(|&n| {
                        at += n;
                        all[at - n..at].to_vec()
                    })
                    .collect();
                Ok((name.to_string(), parts))
            })
            .collect::<Result<Vec<_>>>()?;
        let step_state = self.read_state()?;
        let scaler = match self.scaler {
            Some(config) => Some(
                serde_json::to_string(&SavedScaler {
                    config,
                    scale: step_state.loss_scale,
                    growth_tracker: step_state.growth_tracker,
                    hysteresis_left: step_state.hysteresis_left,
                })
                .map_err(|e| bad(e.to_string()))?,
            ),
            None => None,
        };
        let checkpoint = Checkpoint {
            optimizer: R::NAME.to_string(),
            scaler,
            config: serde_json::to_string(&self.groups[0].config)
                .map_err(|e| bad(e.to_string()))?,
            groups: Some(serde_json::to_string(&self.groups).map_err(|e| bad(e.to_string()))?),
            step: step_state.step,
            torch_step: R::TORCH_STEP,
            tensors: self
                .layout
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect(),
            states,
        };
        checkpoint.encode()
    }

    pub(crate) fn load(&mut self, bytes: &[u8], options: &LoadOptions) -> Result<()> {
        let c = Checkpoint::decode(bytes)?;
        if c.optimizer != R::NAME {
            return Err(bad(format!(
                "saved by {}; this optimizer is {}",
                c.optimizer,
                R::NAME
            )));
        }
        let configs = self.saved_configs(&c)?;
        // The arenas and bind groups were built for this optimizer's states: a checkpoint
        // whose config keeps others (amsgrad, momentum, centered) cannot be loaded into it.
        let want: Vec<&str> = self.groups[0]
            .config
            .state_names()
            .into_iter()
            .flatten()
            .collect();
        let saved: Vec<&str> = c.states.iter().map(|(n, _)| n.as_str()).collect();
        let loaded: Vec<&str> = configs[0].state_names().into_iter().flatten().collect();
        let agree = configs
            .iter()
            .all(|config| config.state_names() == self.groups[0].config.state_names());
        if saved != want || !agree {
            return Err(bad(format!(
                "optimizer states differ: the checkpoint keeps {saved:?} (its config {loaded:?}), \
                 this optimizer keeps {want:?}; build the optimizer with the checkpoint's \
                 amsgrad / momentum / centered settings"
            )));
        }
        let values = self.match_by_name(&c, options)?;
        let scaler: Option<SavedScaler> = match &c.scaler {
            Some(json) => {
                let saved: SavedScaler = serde_json::from_str(json)
                    .map_err(|e| bad(format!("the loss scaler does not parse: {e}")))?;
                saved.config.validate()?;
                check_scale(saved.scale)?;
                Some(saved)
            }
            None => None,
        };
        let state = DeviceStepState {
            step: c.step,
            loss_scale: scaler.as_ref().map_or(1.0, |s| s.scale),
            growth_tracker: scaler.as_ref().map_or(0, |s| s.growth_tracker),
            hysteresis_left: scaler.as_ref().map_or(0, |s| s.hysteresis_left),
            ..DeviceStepState::initial()
        };
        // Everything is checked: now write, in one submission on a GPU (all or nothing).
        let arenas = self.states.iter().flatten();
        match &self.device {
            Some(d) => {
                // f32 states as slab images; bf16 states rounded to nearest even (exact for
                // values saved from bf16 states), piece by piece.
                let arenas: Vec<&Arena> = arenas.collect();
                let (images, bf16_writes): (Vec<Vec<Vec<f32>>>, Vec<typed_io::Write<'_>>) =
                    match self.state_dtype {
                        Dtype::Bf16 => (
                            Vec::new(),
                            arenas
                                .iter()
                                .zip(&values)
                                .flat_map(|(arena, v)| {
                                    let targets = bf16_targets(gpu_bindings(arena));
                                    typed_io::value_writes(&self.layout, &targets, None, v)
                                })
                                .collect(),
                        ),
                        _ => (
                            values
                                .iter()
                                .map(|v| slab_images(&self.layout, v))
                                .collect(),
                            Vec::new(),
                        ),
                    };
                let mut writes = vec![(&d.workspace.state, 0, bytemuck::bytes_of(&state))];
                for (arena, images) in arenas.iter().zip(&images) {
                    writes.extend(image_writes(&self.layout, gpu_bindings(arena), images));
                }
                writes.extend(
                    bf16_writes
                        .iter()
                        .map(|(b, at, bytes)| (*b, *at, bytes.as_slice())),
                );
                d.gpu.upload(&writes)?;
                // The step state was replaced: earlier reports no longer describe it.
                d.workspace.generation.fetch_add(1, Ordering::SeqCst);
            }
            None => {
                for (arena, v) in self.states.iter_mut().flatten().zip(&values) {
                    write_all(None, &self.layout, arena, v, "state")?;
                    // bf16 states hold bf16 values, as the device rounds them on load.
                    if let (Dtype::Bf16, Arena::Cpu(v)) = (self.state_dtype, arena) {
                        host::round16(v, Dtype::Bf16, None, 0);
                    }
                }
                self.host_state = state;
            }
        }
        for (group, config) in self.groups.iter_mut().zip(configs) {
            group.config = config;
        }
        self.scaler = scaler.map(|s| s.config);
        Ok(())
    }

    /// The hyperparameters a checkpoint restores, one per parameter group of this
    /// optimizer, each checked: a checkpoint with groups must have as many as this
    /// optimizer (their tensors are this optimizer's: membership follows the set); one
    /// without (version 2) restores a single-group optimizer.
    fn saved_configs(&self, c: &Checkpoint) -> Result<Vec<R>> {
        let configs: Vec<R> = match &c.groups {
            Some(json) => serde_json::from_str::<Vec<ParamGroup<R>>>(json)
                .map_err(|e| bad(format!("the {} groups do not parse: {e}", R::NAME)))?
                .into_iter()
                .map(|g| g.config)
                .collect(),
            None => vec![serde_json::from_str(&c.config)
                .map_err(|e| bad(format!("the {} config does not parse: {e}", R::NAME)))?],
        };
        if configs.len() != self.groups.len() {
            return Err(bad(format!(
                "the checkpoint has {} parameter groups; this optimizer has {}",
                configs.len(),
                self.groups.len()
            )));
        }
        for config in &configs {
            config.validate()?;
        }
        Ok(configs)
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

    /// Each state's values for this set, all tensors concatenated in the set's order,
    /// matched to the checkpoint by tensor name under `options`.
    fn match_by_name(&self, c: &Checkpoint, options: &LoadOptions) -> Result<Vec<Vec<f32>>> {
        let saved: HashMap<&str, usize> = c
            .tensors
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        if saved.len() != c.tensors.len() {
            return Err(bad("the checkpoint lists a tensor name twice"));
        }
        let here = &self.layout.tensors;
        let mut missing = Vec::new();
        let mut source = Vec::with_capacity(here.len());
        for t in here {
            match saved.get(t.name.as_str()) {
                Some(&i) if c.tensors[i].1 != t.shape => {
                    return Err(bad(format!(
                        "tensor {:?} was saved with shape {:?}; this set has {:?}",
                        t.name, c.tensors[i].1, t.shape
                    )))
                }
                Some(&i) => source.push(Some(i)),
                None => {
                    missing.push(t.name.as_str());
                    source.push(None);
                }
            }
        }
        if !missing.is_empty() && options.missing == MissingTensors::Error {
            return Err(bad(format!(
                "{} tensors of this set are not in the checkpoint: {:?}{} (LoadOptions::missing \
                 = FreshState gives them fresh state)",
                missing.len(),
                &missing[..missing.len().min(4)],
                if missing.len() > 4 { " ..." } else { "" }
            )));
        }
        let names: std::collections::HashSet<&str> = here.iter().map(|t| t.name.as_str()).collect();
        let unexpected: Vec<&str> = c
            .tensors
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !names.contains(n))
            .collect();
        if !unexpected.is_empty() && options.unexpected == UnexpectedTensors::Error {
            return Err(bad(format!(
                "{} tensors of the checkpoint are not in this set: {:?}{} \
                 (LoadOptions::unexpected = Ignore skips them)",
                unexpected.len(),
                &unexpected[..unexpected.len().min(4)],
                if unexpected.len() > 4 { " ..." } else { "" }
            )));
        }
        // A tensor missing from the checkpoint starts fresh: its group's initial state.
        let slots = self.groups[0].config.state_names();
        let slots = (0..3).filter(|&k| slots[k].is_some());
        Ok(c.states
            .iter()
            .zip(slots)
            .map(|((_, parts), slot)| {
                let mut all = Vec::with_capacity(self.layout.numel() as usize);
                for ((t, src), &g) in here.iter().zip(&source).zip(&self.group_of) {
                    let fresh = self.groups[g as usize].config.initial_state()[slot];
                    match src {
                        Some(i) => all.extend_from_slice(&parts[*i]),
                        None => all.resize(all.len() + t.numel as usize, fresh),
                    }
                }
                all
            })
            .collect())
    }
}

/// bf16 state `bindings` as transfer targets.
fn bf16_targets(bindings: &[crate::arena::Binding]) -> Vec<typed_io::Target<'_>> {
    bindings.iter().map(|b| Some((b, Dtype::Bf16))).collect()
}

/// Every group's rule struct, in group order: the update kernel's group table.
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
