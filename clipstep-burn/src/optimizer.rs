//! [`BurnOptimizer`]: a burn module's step through a clipstep optimizer.

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{Module, ParamGroup as BurnGroup};
use burn::optim::GradientsParams;
use clipstep::{
    Context, Dtype, LoadOptions, MissingTensors, Norm, Optimizer, ParamGroup, ParamSet, Report,
    RuleConfig, StepOptions, UnexpectedTensors,
};

use crate::built::{numel, Built, Factory};
use crate::collect::{Collect, Visited};
use crate::error::{Error, Result};

/// A burn model's optimizer backed by clipstep: `model = optim.step(lr, model, grads)?`
/// as burn's `ModuleOptimizer::step`, with clipstep's clipping (global norm in any p, per
/// value, non-finite skip, loss-scale unscale: [`StepOptions`]) fused into the update.
///
/// Every float parameter with a gradient in `grads` is stepped; a parameter without one (not
/// reached by the loss) is left as it is and costs nothing.
///
/// f32 parameters are updated in place in burn's buffers. f16 and bf16 parameters are
/// trained with f32 master weights that clipstep keeps (started from the model's values when
/// the set is built, as `model.half()` after loading in PyTorch): each step copies burn's
/// 16-bit gradients into clipstep's set, updates the master weights and writes their rounding
/// (nearest even) into burn's parameters, in the step's one command buffer: the model reads
/// 16-bit values, the optimizer accumulates updates smaller than their rounding step. The
/// master weights are not in [`BurnOptimizer::save`]'s checkpoint: after a load they start
/// again from the model's 16-bit values, as they do after
/// [`BurnOptimizer::restart_master_weights`].
///
/// Learning rates: burn's rate for a tensor (a number, or a scheduler's
/// `ModuleLearningRate`, per-group schedules included) scales its clipstep group's
/// configured rate: group `g` steps at `lr_burn · lr_g / lr_ref`, where `lr_ref` is the
/// first group's configured rate (or the first non-zero one). With one group that is
/// burn's rate; a group configured at half the first one's rate stays at half of burn's;
/// one configured at 0 stays frozen. The tensors of one clipstep group must get one rate
/// from burn ([`Error::GroupRate`] otherwise): declare burn's scheduler groups with
/// [`BurnOptimizer::with_burn_groups`].
///
/// `Send`; in burn's `Learner`, share it between the model's clones with
/// [`crate::SharedOptimizer`].
pub struct BurnOptimizer {
    ctx: Context,
    factory: Factory,
    /// The rule the factory builds, where known (`rule`, `adamw`, `from_burn`): a
    /// checkpoint of another rule is refused at load.
    pub(crate) rule_name: Option<&'static str>,
    options: StepOptions,
    burn_groups: Vec<BurnGroup>,
    pub(crate) built: Option<Built>,
    pub(crate) pending_state: Option<Vec<u8>>,
    report: Option<Report>,
    gradients_in_place: bool,
    always_copy: bool,
    per_tensor_clip: Option<(f32, Norm)>,
    builds: usize,
    copied: usize,
    /// The copies of shared bf16 parameters within one of burn's buffers pass through here.
    scratch: Option<wgpu::Buffer>,
}

impl BurnOptimizer {
    /// An optimizer on `ctx` (which must share burn's device: [`crate::shared_device`])
    /// whose clipstep optimizer `factory` builds for the model's parameters (called at the
    /// first step, and again only if the set of parameters changes). Default options: no
    /// clipping, non-finite gradients skip the step.
    pub fn new<F>(ctx: &Context, factory: F) -> Self
    where
        F: Fn(&ParamSet) -> clipstep::Result<Box<dyn Optimizer + Send>> + Send + 'static,
    {
        Self::with_factory(ctx, Box::new(move |set, _| factory(set)), None)
    }

    fn with_factory(ctx: &Context, factory: Factory, rule_name: Option<&'static str>) -> Self {
        BurnOptimizer {
            ctx: ctx.clone(),
            factory,
            rule_name,
            options: StepOptions::default(),
            burn_groups: Vec::new(),
            built: None,
            pending_state: None,
            report: None,
            gradients_in_place: false,
            always_copy: false,
            per_tensor_clip: None,
            builds: 0,
            copied: 0,
            scratch: None,
        }
    }

    /// clipstep's rule `config` (any registered rule: `AdamWConfig`, `SgdConfig`, ...,
    /// see `clipstep::rules`) for every parameter: one clipstep parameter group per burn
    /// group declared with [`BurnOptimizer::with_burn_groups`] (one group if none).
    pub fn rule<C: RuleConfig>(ctx: &Context, config: C) -> Self
    where
        C::Optimizer: Send,
    {
        let factory: Factory = Box::new(move |set, partition| {
            let groups = partition
                .iter()
                .map(|names| ParamGroup::new(names.iter().cloned(), config.clone()))
                .collect();
            let opt: Box<dyn Optimizer + Send> = Box::new(C::optimizer(set, groups)?);
            Ok(opt)
        });
        Self::with_factory(ctx, factory, Some(C::NAME))
    }

    /// clipstep's AdamW (PyTorch's rule) for every parameter: [`BurnOptimizer::rule`] with
    /// an [`AdamWConfig`](clipstep::AdamWConfig).
    pub fn adamw(ctx: &Context, config: clipstep::AdamWConfig) -> Self {
        Self::rule(ctx, config)
    }

    /// The same optimizer with these step options (clipping, non-finite policy, loss scale).
    pub fn with_options(mut self, options: StepOptions) -> Self {
        self.options = options;
        self
    }

    /// The same optimizer, its parameters split as burn's scheduler groups split them (the
    /// `ParamGroup`s given to `ModuleLrSchedulerConfig::with_group`, in the same order; a
    /// tensor belongs to the last that matches it, as in burn): optimizers built by
    /// [`BurnOptimizer::rule`] get one clipstep group per burn group with tensors, so each
    /// follows its own schedule. A factory of [`BurnOptimizer::new`] builds its own groups.
    pub fn with_burn_groups(mut self, groups: Vec<BurnGroup>) -> Self {
        self.burn_groups = groups;
        self
    }

    /// The same optimizer, first clipping each tensor's gradient by its own norm,
    /// `g_t ← g_t · min(1, max_norm / (‖g_t‖ + 1e-6))` (burn's `GradientClippingConfig::Norm`,
    /// PyTorch's `clip_grad_norm_` per tensor), in the step's command buffer, before the
    /// step's own clip (if any). It sees the gradients as stored, before `/ grad_scale`.
    /// `None` turns it off.
    pub fn with_per_tensor_clip(mut self, clip: Option<(f32, Norm)>) -> Self {
        self.per_tensor_clip = clip;
        self
    }

    /// The same optimizer, copying burn's gradients into its own gradient buffer every step
    /// even when it could read them in place (the fallback path; bit-identical results).
    pub fn with_gradient_copies(mut self, always: bool) -> Self {
        self.always_copy = always;
        self
    }

    /// Starts the f32 master weights of the model's f16 and bf16 parameters again from the
    /// model's values at the next step (a host sync then). Call it after changing those
    /// parameters other than through this optimizer (a record loaded into the model): the
    /// next step would otherwise write the master weights' rounding over the change. (A
    /// [`BurnOptimizer::load`] does it; f32 parameters need nothing.)
    pub fn restart_master_weights(&mut self) {
        if let Some(built) = self.built.as_mut() {
            built.reseed = true;
        }
    }

    /// Sets the options of the next steps.
    pub fn set_options(&mut self, options: StepOptions) {
        self.options = options;
    }

    /// One step: `params ← update(params, clip(grads / grad_scale))` for every parameter of
    /// `module` with a gradient in `grads`, at burn's learning rate `lr` (a number, or a burn
    /// scheduler's `ModuleLearningRate`, relative to each group's configured rate: see
    /// [`BurnOptimizer`]); returns the module, its parameters updated in place (or in fresh
    /// tensors where they were shared). Recorded after burn's queued work in one command
    /// buffer on the shared queue; nothing is read back. Parameters that moved since the
    /// last step (a clone of the module was alive, a loaded record) are followed by a rebind
    /// of the set, not a rebuild. On error no parameter or state changed, but `module`,
    /// taken by value as burn's optimizers take it, is dropped with the error
    /// ([`BurnOptimizer::step_keeping`] gives it back).
    pub fn step<M: Module>(
        &mut self, lr: impl Into<ModuleLearningRate>, module: M, grads: GradientsParams,
    ) -> Result<M> {
        let (module, result) = self.step_keeping(lr, module, grads);
        result.map(|()| module)
    }

    /// [`BurnOptimizer::step`] that always gives the module back: stepped with `Ok`, or with
    /// its parameters' values as they were and the error (what a caller that must return a
    /// module, such as burn's `TrainStep::optimize`, needs).
    pub fn step_keeping<M: Module>(
        &mut self, lr: impl Into<ModuleLearningRate>, module: M, mut grads: GradientsParams,
    ) -> (M, Result<()>) {
        let lr = lr.into();
        let mut visitor = Collect {
            ctx: &self.ctx,
            grads: &mut grads,
            lr: &lr,
            burn_groups: &self.burn_groups,
            path: Vec::new(),
            visited: Vec::new(),
            copied: 0,
            copies: Vec::new(),
            originals: Vec::new(),
            scratch: &mut self.scratch,
            error: None,
        };
        let module = module.map(&mut visitor);
        // The fresh copies of shared parameters are filled even if the step fails: the
        // module given back holds their values.
        visitor.submit_copies();
        if let Some(error) = visitor.error {
            return (module, Err(error));
        }
        let visited = visitor.visited;
        self.copied = visitor.copied;
        let result = self.step_visited(visited);
        (module, result)
    }

    /// The step over the collected parameters: placement, rates, one command buffer.
    fn step_visited(&mut self, visited: Vec<Visited>) -> Result<()> {
        if visited.is_empty() {
            return Ok(()); // no parameter has a gradient: nothing to step
        }
        let in_place = self.place(&visited)?;
        let built = self.built.as_mut().expect("placed above");
        built.set_rates(&visited)?;
        let half = built.half_copies(&visited)?;
        built.seed_master_weights(&self.ctx)?;
        let (device, queue) = self.ctx.device_queue().ok_or(Error::NoDevice)?;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("clipstep-burn step"),
        });
        for copy in &half.grads_in {
            copy.encode(&mut encoder);
        }
        if !in_place {
            let f32_tensors = visited.iter().zip(&built.placement);
            for (v, placed) in f32_tensors.filter(|(v, _)| v.dtype == Dtype::F32) {
                let bytes = 4 * numel(&v.shape);
                if bytes > 0 {
                    encoder.copy_buffer_to_buffer(
                        &v.grad.buffer,
                        v.grad.offset,
                        &built.grads,
                        placed.grad_offset,
                        bytes,
                    );
                }
            }
        }
        self.gradients_in_place = in_place && visited.iter().all(|v| v.dtype == Dtype::F32);
        if let Some((max_norm, norm)) = self.per_tensor_clip {
            built.set.encode_clip_grad_norm_per_tensor(
                &mut encoder,
                max_norm,
                norm,
                self.options.nonfinite,
            )?;
        }
        let report = built
            .opt
            .encode_step(&mut encoder, &mut built.set, &self.options)?;
        for copy in &half.params_out {
            copy.encode(&mut encoder);
        }
        queue.submit([encoder.finish()]);
        self.report = Some(report);
        // burn's gradient tensors (in `visited`) lived until the step that reads them was
        // submitted; their memory may be reused from here on, by work queued after it.
        drop(visited);
        Ok(())
    }

    /// Puts the clipstep set where `visited` are: a rebind when the tensors are the set's
    /// (gradients read in place when each pool's sit in one of burn's buffers, else from
    /// the home buffer they are copied into), a new set (the state carried over) when the
    /// tensors changed or their new places split a pool. Returns whether gradients are read
    /// in place.
    fn place(&mut self, visited: &[Visited]) -> Result<bool> {
        if let Some(built) = self.built.as_mut() {
            if built.fits(visited) {
                if !self.always_copy && built.bind(visited, true).is_ok() {
                    return Ok(true);
                }
                if built.bind(visited, false).is_ok() {
                    return Ok(false);
                }
            }
        }
        self.rebuild(visited)?;
        let built = self.built.as_mut().expect("rebuilt above");
        Ok(!self.always_copy && built.bind(visited, true).is_ok())
    }

    /// Builds the clipstep set over `visited` (gradients in the home buffer), carrying the
    /// state of the previous set, or the checkpoint given to `load` before the first step.
    fn rebuild(&mut self, visited: &[Visited]) -> Result<()> {
        let partition = partition(visited);
        let mut fresh = Built::new(&self.ctx, &self.factory, visited, &partition)?;
        let carried = match &self.built {
            Some(old) => Some(old.opt.states().save()?),
            None => self.pending_state.clone(),
        };
        if let Some(bytes) = carried {
            let lenient = LoadOptions {
                missing: MissingTensors::FreshState,
                unexpected: UnexpectedTensors::Ignore,
            };
            fresh.load(&bytes, &lenient)?;
        }
        self.pending_state = None;
        self.built = Some(fresh);
        self.builds += 1;
        Ok(())
    }

    /// Whether the last step read burn's gradients where burn put them (true), or copied
    /// them into the optimizer's gradient buffer first (false: some pool's gradients were
    /// spread over several of burn's buffers, or off the storage alignment, or the model has
    /// f16 or bf16 parameters, whose gradients are always copied into the set).
    pub fn gradients_in_place(&self) -> bool {
        self.gradients_in_place
    }

    /// How many times the clipstep set was built: 1 after the first step, and more only
    /// when the stepped parameters changed (another model, a parameter gaining or losing
    /// its gradient) or moved so that a pool split. Parameters that move (a clone of the
    /// module alive at the step, as in burn's `Learner`) are followed by a rebind.
    pub fn builds(&self) -> usize {
        self.builds
    }

    /// How many parameters the last step copied to a fresh tensor before stepping it,
    /// because their handle was shared (a clone of the module alive at the step, as in
    /// burn's `Learner`); 0 when every parameter was updated in place.
    pub fn parameters_copied(&self) -> usize {
        self.copied
    }

    /// The last step's report (norm, clip coefficient, skipped, step count; a host sync
    /// when read). `None` before the first step.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// The clipstep optimizer (its state, step count, learning rates); `None` before the
    /// first step.
    pub fn clipstep_optimizer(&self) -> Option<&dyn Optimizer> {
        self.built
            .as_ref()
            .map(|b| b.opt.as_ref() as &dyn Optimizer)
    }

    /// How many distinct wgpu buffers of burn's memory pool hold the parameters (each is
    /// one clipstep pool: one dispatch per kernel). 0 before the first step.
    pub fn parameter_buffers(&self) -> usize {
        let Some(built) = &self.built else { return 0 };
        let mut buffers: Vec<&wgpu::Buffer> = Vec::new();
        for p in &built.placement {
            if !buffers.contains(&&p.params.buffer) {
                buffers.push(&p.params.buffer);
            }
        }
        buffers.len()
    }
}

/// The tensors of each burn group, in group order, empty groups left out.
fn partition(visited: &[Visited]) -> Vec<Vec<String>> {
    let groups = visited.iter().map(|v| v.burn_group).max().unwrap_or(0) + 1;
    let mut partition = vec![Vec::new(); groups];
    for v in visited {
        partition[v.burn_group].push(v.name.clone());
    }
    partition.retain(|names| !names.is_empty());
    partition
}

impl std::fmt::Debug for BurnOptimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BurnOptimizer")
            .field("rule", &self.rule_name)
            .field("options", &self.options)
            .field("builds", &self.builds)
            .field("parameter_buffers", &self.parameter_buffers())
            .field("gradients_in_place", &self.gradients_in_place)
            .finish_non_exhaustive()
    }
}

/// `BurnOptimizer` can move into a burn `Learner`'s model.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<BurnOptimizer>();
};
