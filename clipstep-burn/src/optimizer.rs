//! [`BurnOptimizer`]: a burn module's step through a clipstep optimizer.

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use clipstep::{
    ArenaOptions, BufferRange, Context, ExternalTensor, LoadOptions, MissingTensors, Norm,
    Optimizer, ParamSet, Report, RuleConfig, StepOptions, UnexpectedTensors,
};

use crate::error::{Error, Result};
use crate::resolve::buffer_of;

/// Builds the clipstep optimizer for a parameter set (called when the set is (re)built).
type Factory = Box<dyn Fn(&ParamSet) -> clipstep::Result<Box<dyn Optimizer>> + Send>;

/// A burn model's optimizer backed by clipstep: `model = optim.step(lr, model, grads)?`
/// as burn's `ModuleOptimizer::step`, with clipstep's clipping (global norm in any p, per
/// value, non-finite skip, loss-scale unscale: [`StepOptions`]) fused into the update.
///
/// Every float parameter with a gradient in `grads` is stepped; a parameter without one (not
/// reached by the loss) is left as it is and costs nothing. burn's learning rate (a
/// scheduler's output) becomes clipstep's in-stream learning rate of every group.
pub struct BurnOptimizer {
    ctx: Context,
    factory: Factory,
    options: StepOptions,
    built: Option<Built>,
    pending_state: Option<Vec<u8>>,
    report: Option<Report>,
    gradients_in_place: bool,
    always_copy: bool,
    per_tensor_clip: Option<(f32, Norm)>,
}

/// The clipstep side, built for one placement of the parameters.
struct Built {
    set: ParamSet,
    opt: Box<dyn Optimizer>,
    /// The gradients' home: each step copies burn's gradients here.
    grads: wgpu::Buffer,
    /// Per parameter, in visiting order: its name, where its parameters are, its gradient's
    /// offset in `grads`, its element count.
    placement: Vec<Placed>,
}

#[derive(Clone)]
struct Placed {
    name: String,
    shape: Vec<usize>,
    params: BufferRange,
    grad_offset: u64,
}

/// One parameter of this step: its placement and its gradient (kept alive until submitted).
struct Visited {
    name: String,
    shape: Vec<usize>,
    params: BufferRange,
    grad: BufferRange,
    /// The learning rate burn's schedule gives this parameter.
    lr: f64,
    _grad_tensor: Box<dyn std::any::Any>,
}

impl BurnOptimizer {
    /// An optimizer on `ctx` (which must share burn's device: [`crate::shared_device`])
    /// whose clipstep optimizer `factory` builds for the model's parameters (called at the
    /// first step and whenever the parameters move). Default options: no clipping,
    /// non-finite gradients skip the step.
    pub fn new<F>(ctx: &Context, factory: F) -> Self
    where
        F: Fn(&ParamSet) -> clipstep::Result<Box<dyn Optimizer>> + Send + 'static,
    {
        BurnOptimizer {
            ctx: ctx.clone(),
            factory: Box::new(factory),
            options: StepOptions::default(),
            built: None,
            pending_state: None,
            report: None,
            gradients_in_place: false,
            always_copy: false,
            per_tensor_clip: None,
        }
    }

    /// clipstep's rule `config` (any registered rule: `AdamWConfig`, `SgdConfig`, ...,
    /// see `clipstep::rules`) for every parameter, in one parameter group.
    pub fn rule<C: RuleConfig>(ctx: &Context, config: C) -> Self {
        Self::new(ctx, move |set| {
            let opt: Box<dyn Optimizer> = Box::new(config.build(set)?);
            Ok(opt)
        })
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

    /// Sets the options of the next steps.
    pub fn set_options(&mut self, options: StepOptions) {
        self.options = options;
    }

    /// One step: `params ← update(params, clip(grads / grad_scale))` for every parameter of
    /// `module` with a gradient in `grads`, at learning rate `lr` (a number, or a burn
    /// scheduler's `ModuleLearningRate`: one rate for every parameter, else
    /// [`Error::Unsupported`]); returns the module, its
    /// parameters updated in place (or in fresh tensors where they were shared). Recorded
    /// after burn's queued work in one command buffer on the shared queue; nothing is read
    /// back. On error nothing was submitted and no parameter changed, but `module`, taken by
    /// value as burn's optimizers take it, is dropped with the error.
    pub fn step<M: Module>(
        &mut self, lr: impl Into<ModuleLearningRate>, module: M, mut grads: GradientsParams,
    ) -> Result<M> {
        let lr = lr.into();
        let mut visitor = Collect {
            grads: &mut grads,
            lr: &lr,
            path: Vec::new(),
            visited: Vec::new(),
            error: None,
        };
        let module = module.map(&mut visitor);
        if let Some(error) = visitor.error {
            return Err(error);
        }
        let visited = visitor.visited;
        if visited.is_empty() {
            return Ok(module); // no parameter has a gradient: nothing to step
        }
        let lr = visited[0].lr;
        if let Some(other) = visited.iter().find(|v| v.lr != lr) {
            return Err(Error::Unsupported {
                name: other.name.clone(),
                reason: format!(
                    "its learning rate {} differs from {lr} (a per-group schedule); build groups with BurnOptimizer::new and set their rates with set_group_learning_rate",
                    other.lr
                ),
            });
        }
        self.ensure_built(&visited)?;
        let built = self.built.as_mut().expect("built above");
        built.opt.set_learning_rate(lr)?;
        let (device, queue) = self.ctx.device_queue().ok_or(Error::NoDevice)?;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("clipstep-burn step"),
        });
        // burn's gradients are read where they are when clipstep can bind them there (each
        // pool's gradients in one buffer, on the storage alignment); else they are copied on
        // the device into the optimizer's gradient buffer.
        let in_place = !self.always_copy
            && built
                .set
                .rebind_grads(visited.iter().map(|v| (v.name.as_str(), v.grad.clone())))
                .is_ok();
        if !in_place {
            let home = &built.grads;
            built.set.rebind_grads(built.placement.iter().map(|p| {
                let range = BufferRange {
                    buffer: home.clone(),
                    offset: p.grad_offset,
                };
                (p.name.as_str(), range)
            }))?;
            for (v, placed) in visited.iter().zip(&built.placement) {
                let bytes = 4 * numel(&v.shape);
                if bytes > 0 {
                    encoder.copy_buffer_to_buffer(
                        &v.grad.buffer,
                        v.grad.offset,
                        home,
                        placed.grad_offset,
                        bytes,
                    );
                }
            }
        }
        self.gradients_in_place = in_place;
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
        queue.submit([encoder.finish()]);
        self.report = Some(report);
        // burn's gradient tensors (in `visited`) lived until the step that reads them was
        // submitted; their memory may be reused from here on, by work queued after it.
        drop(visited);
        Ok(module)
    }

    /// Whether the last step read burn's gradients where burn put them (true), or copied
    /// them into the optimizer's gradient buffer first (false: some pool's gradients were
    /// spread over several of burn's buffers, or off the storage alignment).
    pub fn gradients_in_place(&self) -> bool {
        self.gradients_in_place
    }

    /// The last step's report (norm, clip coefficient, skipped, step count; a host sync
    /// when read). `None` before the first step.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// The clipstep optimizer (its state, step count, learning rates); `None` before the
    /// first step.
    pub fn clipstep_optimizer(&self) -> Option<&dyn Optimizer> {
        self.built.as_ref().map(|b| b.opt.as_ref())
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

    /// The optimizer's state as a clipstep checkpoint (config, step count, every state
    /// tensor by parameter path; a host sync). Before the first step: what
    /// [`BurnOptimizer::load`] was given, if anything.
    pub fn save(&self) -> Result<Vec<u8>> {
        match (&self.built, &self.pending_state) {
            (Some(built), _) => Ok(built.opt.states().save()?),
            (None, Some(bytes)) => Ok(bytes.clone()),
            (None, None) => Err(Error::Clipstep(clipstep::Error::Checkpoint(
                "nothing to save before the first step".into(),
            ))),
        }
    }

    /// Restores [`BurnOptimizer::save`]'s bytes (now, or at the first step if none was
    /// taken yet; parameters are matched by path).
    pub fn load(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.built {
            Some(built) => Ok(built.opt.checkpoint().load(bytes)?),
            None => {
                self.pending_state = Some(bytes.to_vec());
                Ok(())
            }
        }
    }

    /// Builds (or rebuilds, carrying the state over) the clipstep set when the parameters
    /// are not where the current one has them.
    fn ensure_built(&mut self, visited: &[Visited]) -> Result<()> {
        if let Some(built) = &self.built {
            let same = built.placement.len() == visited.len()
                && built.placement.iter().zip(visited).all(|(p, v)| {
                    p.name == v.name
                        && p.shape == v.shape
                        && p.params.buffer == v.params.buffer
                        && p.params.offset == v.params.offset
                });
            if same {
                return Ok(());
            }
        }
        let (device, _) = self.ctx.device_queue().ok_or(Error::NoDevice)?;
        let align = u64::from(device.limits().min_storage_buffer_offset_alignment).max(256);
        let mut placement = Vec::with_capacity(visited.len());
        let mut at = 0u64;
        for v in visited {
            placement.push(Placed {
                name: v.name.clone(),
                shape: v.shape.clone(),
                params: v.params.clone(),
                grad_offset: at,
            });
            // Whole vec4s (what clipstep binds), then the next offset on the alignment.
            at += (16 * numel(&v.shape).div_ceil(4))
                .max(16)
                .next_multiple_of(align);
        }
        let grads = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("clipstep-burn gradients"),
            size: at.max(align),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let external = placement
            .iter()
            .map(|p| ExternalTensor {
                name: p.name.clone(),
                shape: p.shape.clone(),
                params: p.params.clone(),
                grads: BufferRange {
                    buffer: grads.clone(),
                    offset: p.grad_offset,
                },
            })
            .collect();
        let options = ArenaOptions {
            external,
            ..Default::default()
        };
        let set = ParamSet::new(&self.ctx, &[], options)?;
        let mut opt = (self.factory)(&set)?;
        let carried = match &self.built {
            Some(old) => Some(old.opt.states().save()?),
            None => self.pending_state.take(),
        };
        if let Some(bytes) = carried {
            let lenient = LoadOptions {
                missing: MissingTensors::FreshState,
                unexpected: UnexpectedTensors::Ignore,
            };
            opt.checkpoint().load_with(&bytes, &lenient)?;
        }
        self.built = Some(Built {
            set,
            opt,
            grads,
            placement,
        });
        Ok(())
    }
}

fn numel(shape: &[usize]) -> u64 {
    shape.iter().product::<usize>() as u64
}

/// Visits every float parameter: resolves its buffer and its gradient's, replacing a
/// shared parameter by a fresh copy first.
struct Collect<'a> {
    grads: &'a mut GradientsParams,
    lr: &'a ModuleLearningRate,
    path: Vec<String>,
    visited: Vec<Visited>,
    error: Option<Error>,
}

impl ModuleMapper for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = self.name(id);
        // A shared handle (a clone of the module is alive) is not updated in place.
        let tensor = if tensor.can_mut() {
            tensor
        } else {
            let grad_required = tensor.is_require_grad();
            let fresh = Tensor::from_inner(tensor.inner().mul_scalar(1.0));
            if grad_required {
                fresh.require_grad()
            } else {
                fresh
            }
        };
        let resolved = buffer_of(&name, &tensor.clone().inner())
            .and_then(|params| Ok((params, buffer_of(&name, &grad)?)));
        match resolved {
            Ok((params, grad_range)) => self.visited.push(Visited {
                lr: self.lr.lr_from_param(id, Some(&self.path.join("."))),
                name,
                shape: tensor.shape().dims::<D>().to_vec(),
                params,
                grad: grad_range,
                _grad_tensor: Box::new(grad),
            }),
            Err(e) => self.error = Some(e),
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

impl Collect<'_> {
    /// The parameter's path in the module (`layer1.weight`), or its id at the root.
    fn name(&self, id: ParamId) -> String {
        if self.path.is_empty() {
            format!("param{id}")
        } else {
            self.path.join(".")
        }
    }
}
