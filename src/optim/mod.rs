//! Fused optimizer steps: norm → clip coefficient → update, recorded as one compute pass
//! with no host readback. The gradient is read once for the norm and once for the update.
//!
//! One engine, [`Fused`], runs every rule; [`Sgd`], [`Adam`], [`AdamW`] and [`RmsProp`]
//! are its instances. Hyperparameters and step options reach the device as small
//! in-stream writes, so changing the learning rate never rebuilds a pipeline or bind
//! group, and the step count lives on the device so skipped steps do not advance it.

mod adam;
mod checkpoint;
pub use checkpoint::CHECKPOINT_VERSION;
mod rmsprop;
mod sgd;

use std::sync::Arc;

pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use crate::arena::{read_all, state_arena, Arena, ParamSet};
use crate::clip::{Clip, Nonfinite};
use crate::context::{Context, Gpu};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::norm::{
    bind_group_at, dispatch_per_slab, elementwise_groups, host_norm, whole, NormWorkspace, OpParams,
};
use crate::reference::{self, FinalizeInput, GradTransform, StepState};
use crate::report::{RawStepState, Report, StepReport};
use crate::shaders::Kernel;
use crate::Norm;

/// Options of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOptions {
    /// Clipping applied to the (unscaled) gradient before the update.
    pub clip: Clip,
    /// Mixed-precision loss scale: the update uses `g / grad_scale`, and the reported norm
    /// is that of `g / grad_scale` (as after `GradScaler.unscale_`). Default 1.
    pub grad_scale: f32,
    /// What to do with NaN/Inf gradients. Default [`Nonfinite::Skip`].
    pub nonfinite: Nonfinite,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            clip: Clip::None,
            grad_scale: 1.0,
            nonfinite: Nonfinite::Skip,
        }
    }
}

impl StepOptions {
    /// Checks the clip options and that `grad_scale` is finite and > 0.
    pub fn validate(&self) -> Result<()> {
        self.clip.validate()?;
        if !(self.grad_scale.is_finite() && self.grad_scale > 0.0) {
            return Err(Error::InvalidGradScale(self.grad_scale));
        }
        Ok(())
    }
}

/// The optimizer surface shared by [`Sgd`], [`Adam`], [`AdamW`] and [`RmsProp`].
pub trait Optimizer {
    /// Records and submits one step: `params ← update(params, clip(grads))`.
    fn step(&mut self, params: &mut ParamSet, options: &StepOptions) -> Result<StepReport>;
    /// Records one step into the caller's encoder (submit it before reading the report).
    fn encode_step(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        params: &mut ParamSet,
        options: &StepOptions,
    ) -> Result<StepReport>;
    /// The learning rate of the next step.
    fn learning_rate(&self) -> f32;
    /// Sets the learning rate of the next step (for schedulers): a 48-byte in-stream write,
    /// nothing rebuilt.
    fn set_learning_rate(&mut self, lr: f32) -> Result<()>;
}

/// An optimizer's hyperparameters as the update shaders read them (`struct Update`'s
/// first six fields in `shaders/common.wgsl`); also the config block of a checkpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Hyper {
    /// Learning rate.
    pub lr: f32,
    /// First rule-specific value (momentum, β1, α).
    pub h1: f32,
    /// Second rule-specific value (dampening, β2, eps).
    pub h2: f32,
    /// Third rule-specific value (eps, momentum).
    pub h3: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Rule-specific flag bits.
    pub flags: u32,
}

/// `struct Update` of `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct UpdateUniform {
    hyper: Hyper,
    inv_grad_scale: f32,
    clip_value: f32,
    clip_flags: u32,
    _pad: [u32; 3],
}

/// An update rule: the config of one optimizer. Implemented by the config structs.
pub trait UpdateRule: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Name, as in PyTorch (also the optimizer tag of checkpoints).
    const NAME: &'static str;
    /// Kernel name in `shaders/`.
    #[doc(hidden)]
    const KERNEL: &'static str;
    /// State bindings the kernel declares (at bindings 2, 3, ...).
    #[doc(hidden)]
    const STATE_SLOTS: usize;
    /// PyTorch's constructor checks.
    fn validate(&self) -> Result<()>;
    /// The learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate.
    fn set_lr(&mut self, lr: f32);
    /// The optimizer states bound at slots 2, 3, 4 of the update shader (`None`: unused).
    fn state_names(&self) -> [Option<&'static str>; 3];
    /// `(β1, β2)` when the finalize pass must compute Adam's bias corrections.
    fn bias_correction_betas(&self) -> Option<(f32, f32)>;
    /// The config as shader words.
    fn hyper(&self) -> Hyper;
    /// The config from shader words (inverse of [`UpdateRule::hyper`]).
    fn from_hyper(h: &Hyper) -> Self;
    /// The CPU reference update over whole arenas.
    fn cpu_update(
        &self,
        state: &StepState,
        t: &GradTransform,
        params: &mut [f32],
        grads: &[f32],
        states: [&mut [f32]; 3],
    );
}

/// `flag` if `on`, else 0.
pub(crate) fn bit(on: bool, flag: u32) -> u32 {
    if on {
        flag
    } else {
        0
    }
}

/// `Err(InvalidHyperparameter)` unless `ok`.
pub(crate) fn check(
    optimizer: &'static str,
    name: &'static str,
    value: f32,
    ok: bool,
    rule: &'static str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            optimizer,
            name,
            value,
            rule,
        })
    }
}

/// `lr` must be finite and ≥ 0 (PyTorch: "Invalid learning rate").
pub(crate) fn check_lr(optimizer: &'static str, lr: f32) -> Result<()> {
    check(
        optimizer,
        "lr",
        lr,
        lr.is_finite() && lr >= 0.0,
        "must be finite and >= 0",
    )
}

/// The device half of an optimizer.
struct GpuParts {
    gpu: Arc<Gpu>,
    workspace: NormWorkspace,
    update: wgpu::Buffer,
    update_groups: Vec<wgpu::BindGroup>,
    kernel: Kernel,
}

/// A fused optimizer with rule `R`: see [`Sgd`], [`Adam`], [`AdamW`], [`RmsProp`].
pub struct Fused<R: UpdateRule> {
    ctx: Context,
    set_id: u64,
    layout: Arc<Layout>,
    config: R,
    states: [Option<Arena>; 3],
    gpu: Option<GpuParts>,
    /// The CPU reference's step state (the device keeps its own in the workspace).
    host_state: StepState,
}

impl<R: UpdateRule> Fused<R> {
    /// An optimizer for `params` with zeroed state; `config` is checked with PyTorch's rules.
    pub fn new(params: &ParamSet, config: R) -> Result<Self> {
        config.validate()?;
        let layout = params.layout.clone();
        let states = config
            .state_names()
            .map(|name| name.map(|n| state_arena(&params.ctx, &layout, n)));
        let gpu = match params.ctx.gpu() {
            Some(gpu) => Some(GpuParts::new(
                gpu,
                params,
                &states,
                R::KERNEL,
                R::STATE_SLOTS,
            )?),
            None => None,
        };
        Ok(Fused {
            ctx: params.ctx.clone(),
            set_id: params.id,
            layout,
            config,
            states,
            gpu,
            host_state: StepState::default(),
        })
    }

    /// The current config.
    pub fn config(&self) -> &R {
        &self.config
    }

    /// One optimizer state (e.g. `"exp_avg"`), all tensors concatenated. A host sync.
    pub fn state(&self, name: &str) -> Result<Vec<f32>> {
        let names = self.config.state_names();
        let k = names
            .iter()
            .position(|n| *n == Some(name))
            .ok_or_else(|| Error::UnknownTensor(format!("optimizer state {name}")))?;
        let arena = self.states[k].as_ref().expect("named states are allocated");
        read_all(self.ctx.gpu(), &self.layout, arena, "state")
    }

    /// Steps taken (skipped steps excluded). A host sync on a GPU.
    pub fn step_count(&self) -> Result<u32> {
        Ok(self.read_state()?.step)
    }

    fn read_state(&self) -> Result<StepState> {
        match &self.gpu {
            Some(g) => {
                let bytes = g.gpu.read_blocking(&[(&g.workspace.state, 0, 32)])?;
                Ok(bytemuck::pod_read_unaligned::<RawStepState>(&bytes).into())
            }
            None => Ok(self.host_state),
        }
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

    /// The finalize options and the update uniform of a step with `options`.
    fn step_params(&self, options: &StepOptions) -> (OpParams, UpdateUniform) {
        let norm_clip = options.clip.norm_clip();
        let needs_norm = norm_clip.is_some() || options.nonfinite != Nonfinite::Propagate;
        let (max_norm, norm) = norm_clip.unwrap_or((0.0, Norm::L2));
        let inv_grad_scale = 1.0 / options.grad_scale;
        // ln β in f64: the finalize pass computes 1 − β^t as −expm1(t · ln β).
        let log = |b: f32| f64::from(b).ln().max(-100.0) as f32;
        let (log_beta1, log_beta2) = self
            .config
            .bias_correction_betas()
            .map_or((0.0, 0.0), |(b1, b2)| (log(b1), log(b2)));
        let op = OpParams {
            has_norm: u32::from(needs_norm),
            clip_norm: u32::from(norm_clip.is_some()),
            max_norm,
            inv_grad_scale,
            policy: options.nonfinite.shader_code(),
            count_step: 1,
            bias_correction: u32::from(self.config.bias_correction_betas().is_some()),
            log_beta1,
            log_beta2,
            ..OpParams::norm(norm, &self.layout)
        };
        let clip_value = options.clip.value_clip();
        let update = UpdateUniform {
            hyper: self.config.hyper(),
            inv_grad_scale,
            clip_value: clip_value.unwrap_or(0.0),
            clip_flags: u32::from(norm_clip.is_some()) | (u32::from(clip_value.is_some()) << 1),
            _pad: [0; 3],
        };
        (op, update)
    }

    fn cpu_step(&mut self, params: &mut ParamSet, options: &StepOptions) -> Result<StepReport> {
        let (op, update) = self.step_params(options);
        let norm = options.clip.norm_clip().map_or(Norm::L2, |(_, n)| n);
        let (Arena::Cpu(p), Arena::Cpu(g)) = (&mut params.params, &params.grads) else {
            unreachable!("CPU optimizers hold CPU sets")
        };
        let (sum, per_tensor) = if op.has_norm != 0 {
            let (sum, per_tensor) = host_norm(&params.layout, g, norm, op.inv_grad_scale);
            (Some(sum), per_tensor)
        } else {
            (None, Vec::new())
        };
        let state = reference::finalize(
            &self.host_state,
            &FinalizeInput {
                sum,
                norm,
                max_norm: options.clip.norm_clip().map(|(m, _)| m),
                inv_grad_scale: op.inv_grad_scale,
                policy: options.nonfinite,
                count_step: true,
                betas: self.config.bias_correction_betas(),
            },
        );
        let transform = GradTransform {
            inv_grad_scale: update.inv_grad_scale,
            clip_coef: state.clip_coef,
            clip_value: options.clip.value_clip(),
        };
        let mut empty: [Vec<f32>; 3] = Default::default();
        let slots: Vec<&mut [f32]> = self
            .states
            .iter_mut()
            .zip(empty.iter_mut())
            .map(|(s, e)| match s {
                Some(Arena::Cpu(v)) => v.as_mut_slice(),
                _ => e.as_mut_slice(),
            })
            .collect();
        let slots: [&mut [f32]; 3] = slots.try_into().expect("three slots");
        self.config.cpu_update(&state, &transform, p, g, slots);
        self.host_state = state;
        Ok(Report::host(state, per_tensor, options.nonfinite))
    }
}

impl<R: UpdateRule> Optimizer for Fused<R> {
    fn step(&mut self, params: &mut ParamSet, options: &StepOptions) -> Result<StepReport> {
        options.validate()?;
        self.check_set(params)?;
        let Some(g) = &self.gpu else {
            return self.cpu_step(params, options);
        };
        let gpu = g.gpu.clone();
        let mut encoder = gpu.encoder();
        let report = self.encode_step(&mut encoder, params, options)?;
        gpu.submit(encoder)?;
        Ok(report)
    }

    fn encode_step(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        params: &mut ParamSet,
        options: &StepOptions,
    ) -> Result<StepReport> {
        options.validate()?;
        self.check_set(params)?;
        let (op, update) = self.step_params(options);
        let g = self.gpu.as_ref().ok_or(Error::NeedsGpu("encode_step"))?;
        // The step's options and hyperparameters, from one upload buffer.
        let writes = [
            g.workspace.op_write(&op),
            (&g.update, bytemuck::bytes_of(&update)),
        ];
        g.gpu.write_in_stream(encoder, &writes)?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(R::NAME),
                timestamp_writes: None,
            });
            g.workspace
                .encode_norm(&mut pass, &g.gpu, &self.layout, &op);
            let sizes = self.layout.slabs.iter().map(|s| elementwise_groups(s.len));
            dispatch_per_slab(&mut pass, &g.gpu, g.kernel, &g.update_groups, sizes);
        }
        Ok(g.workspace
            .report(&g.gpu, self.layout.tensors.len(), options.nonfinite))
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr()
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        check_lr(R::NAME, lr)?;
        self.config.set_lr(lr);
        Ok(())
    }
}

impl GpuParts {
    fn new(
        gpu: &Arc<Gpu>,
        params: &ParamSet,
        states: &[Option<Arena>; 3],
        kernel_name: &str,
        state_slots: usize,
    ) -> Result<GpuParts> {
        let layout = &params.layout;
        let tables = params.tables.as_ref().expect("GPU sets have tables");
        let workspace = NormWorkspace::new(gpu, layout, tables, &params.grads);
        let update = gpu.uniform("update", &[0u8; std::mem::size_of::<UpdateUniform>()]);
        // Unused state slots get distinct one-vec4 buffers: writable bindings must not alias.
        let dummies: Vec<wgpu::Buffer> = (0..3).map(|_| gpu.storage("unused state", 16)).collect();
        let kernel = Kernel::by_name(kernel_name);
        let (Arena::Gpu(p), Arena::Gpu(g)) = (&params.params, &params.grads) else {
            unreachable!("GPU sets hold GPU arenas")
        };
        let update_groups = (0..layout.slabs.len())
            .map(|s| {
                let state = |k: usize| match &states[k] {
                    Some(Arena::Gpu(b)) => b[s].resource(),
                    _ => whole(&dummies[k]),
                };
                let mut entries = vec![(0, p[s].resource()), (1, g[s].resource())];
                entries.extend((0..state_slots).map(|k| (2 + k as u32, state(k))));
                entries.extend([
                    (5, whole(&workspace.state)),
                    (6, whole(&update)),
                    (7, whole(&tables.slab_uniforms[s])),
                ]);
                bind_group_at(gpu, kernel, &entries)
            })
            .collect();
        gpu.check()?;
        Ok(GpuParts {
            gpu: gpu.clone(),
            workspace,
            update,
            update_groups,
            kernel,
        })
    }
}
