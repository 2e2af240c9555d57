//! Fused optimizer steps: norm → clip coefficient → update, recorded as one compute pass
//! with no host readback. The gradient is read once for the norm and once for the update.
//!
//! Every rule (`rules/<rule>.rs`: SGD, Adam, AdamW, RMSprop, Adagrad, Lion, LARS, LAMB, ...)
//! implements [`RuleConfig`] and runs on one engine; its optimizer type implements
//! [`Optimizer`]; [`crate::for_each_rule`] visits every registered rule. Hyperparameters
//! and step options reach the device as small in-stream writes, so changing the learning
//! rate never rebuilds a pipeline or bind group, and the step count lives on the device so
//! skipped steps do not advance it. Hyperparameters are f64,
//! as PyTorch's Python floats: constants such as `1 − β` are computed in f64 on the host.

mod engine;
#[cfg(test)]
mod golden;
mod groups;
mod handles;
pub(crate) mod loss_scale;
pub mod rules;

pub use groups::ParamGroup;
pub use handles::{CheckpointIo, GroupRates, LossScaling, States};

use crate::dtype::Rounding;
use crate::error::{Error, Result};

use crate::options::Clip;
use crate::options::{Nonfinite, Norm};
use crate::report::Report;
use crate::shard::ShardPartial;
use crate::storage::param_set::ParamSet;

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
    /// Skip the step on the device, leaving parameters, states and the step count
    /// bit-identical, unless the step's global norm (of `g / grad_scale`, in the norm
    /// clip's kind, else L2) is below this bound; a NaN norm skips too. Optax's
    /// `skip_large_updates` with `max_squared_norm = bound²`. Default `None`.
    pub skip_above: Option<f32>,
    /// A total norm computed elsewhere: the step takes it as the norm of the gradients as
    /// stored (before `/ grad_scale`) and runs no norm pass, as PyTorch's
    /// `clip_grads_with_norm_`. Phase 2 of a sharded norm ([`crate::shard`]): every rank
    /// passes the [`crate::shard::combine`]d total. NaN or +Inf counts as non-finite
    /// gradients under `nonfinite` (the step is skipped on every rank under `Skip`); the
    /// report then has no per-tensor norms. Default `None`.
    pub total_norm: Option<f32>,
    /// How the step writes 16-bit parameters (a bf16 or f16 set's model copy, or its
    /// parameters without master weights): to nearest even (default) or, for bf16,
    /// stochastically. No effect on f32 parameters.
    pub rounding: Rounding,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            clip: Clip::None,
            grad_scale: 1.0,
            nonfinite: Nonfinite::Skip,
            skip_above: None,
            total_norm: None,
            rounding: Rounding::NearestEven,
        }
    }
}

impl StepOptions {
    /// Checks the clip options and that `grad_scale` is finite and > 0 with a finite
    /// reciprocal (the update multiplies by `1 / grad_scale`).
    pub fn validate(&self) -> Result<()> {
        self.clip.validate()?;
        let ok = self.grad_scale.is_finite() && self.grad_scale > 0.0;
        if !(ok && (1.0 / self.grad_scale).is_finite()) {
            return Err(Error::InvalidGradScale(self.grad_scale));
        }
        if let Some(norm) = self.total_norm.filter(|&n| n < 0.0) {
            return Err(Error::InvalidTotalNorm(norm));
        }
        match self.skip_above {
            Some(bound) if !(bound.is_finite() && bound > 0.0) => {
                Err(Error::InvalidSkipBound(bound))
            }
            _ => Ok(()),
        }
    }
}

/// What every rule's optimizer type ([`RuleOptimizer::Optimizer`]) shares: PyTorch's `step`
/// and learning rate, and one accessor per further concern (groups, states, checkpoints,
/// the loss scale), so the trait stays small and a training loop holding a
/// `Box<dyn Optimizer>` still does everything. Each type's `new(params, config)`,
/// `with_groups`, `config()` and `param_groups()` are its own.
pub trait Optimizer {
    /// Records and submits one step: `params ← update(params, clip(grads / grad_scale))`
    /// (on the CPU backend: runs it).
    fn step(&mut self, params: &mut ParamSet, options: &StepOptions) -> Result<Report>;
    /// Records one step into the caller's encoder (submit it before reading the report).
    /// The encoder must come from this Context's device: wgpu checks devices when the
    /// encoder is finished, so one of another device makes `finish()` return a validation
    /// error and nothing recorded in it runs.
    fn encode_step(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        params: &mut ParamSet,
        options: &StepOptions,
    ) -> Result<Report>;
    /// Phase 1 of a sharded global norm ([`crate::shard`]) on rank `rank`: the exact power
    /// sum of the tensors this optimizer counts in the norm (groups with `in_norm`; a
    /// [replicated](ParamGroup::replicated) group on rank 0 only), with the NaN/±Inf flags
    /// of every tensor, in `norm` under `nonfinite`. One norm pass and one readback.
    fn norm_partial(
        &self,
        params: &mut ParamSet,
        norm: Norm,
        nonfinite: Nonfinite,
        rank: usize,
    ) -> Result<ShardPartial>;
    /// The learning rate of the next step (of the first parameter group).
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate of the next step in every parameter group (for schedulers):
    /// an in-stream write of the group table with the next step, nothing rebuilt.
    fn set_learning_rate(&mut self, lr: f64) -> Result<()>;
    /// Each parameter group's learning rate, to read or set one group's (a per-group
    /// schedule).
    fn groups(&mut self) -> GroupRates<'_>;
    /// The optimizer's state tensors (`exp_avg`, ...), its step count, and saving them as a
    /// checkpoint (safetensors, PyTorch's state names).
    fn states(&self) -> States<'_>;
    /// Loading a checkpoint into this optimizer.
    fn checkpoint(&mut self) -> CheckpointIo<'_>;
    /// The dynamic loss scale kept on the device.
    fn loss_scaling(&mut self) -> LossScaling<'_>;
}

/// An update rule's configuration (`SgdConfig`, `AdamWConfig`, ...): what code that handles
/// every rule works with (the CLI's `verify` and `bench`, the test matrix, clipstep-burn),
/// through [`crate::for_each_rule`]. `Default` is the rule's reference library's default
/// (PyTorch's, or Optax's for the rules PyTorch lacks); the config deserializes from that
/// library's keyword arguments (serde, the fields bearing their names).
pub trait RuleConfig:
    RuleOptimizer
    + Clone
    + std::fmt::Debug
    + Default
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The rule's name, as in PyTorch (or Optax): also the optimizer tag of checkpoints.
    const NAME: &'static str;
    /// Configurations that between them exercise each option of the rule (the test matrix
    /// runs every one under every clip). The first is the rule's representative: many
    /// options at once, the one `clipstep verify` checks on every case and set, the 100-step
    /// trajectory tests follow, and `clipstep bench` times (as `scripts/bench_torch.py` runs
    /// PyTorch's twin).
    fn examples() -> Vec<Self>;
    /// The states this configuration keeps, by state slot (`None`: a slot it leaves unused).
    fn state_names(&self) -> [Option<&'static str>; 3];
    /// Each state slot's fresh value (Adagrad's `initial_accumulator_value`; 0 for the rest).
    fn initial_state(&self) -> [f32; 3] {
        [0.0; 3]
    }
    /// One step of the CPU reference over one tensor (`step` = 1 on the first): what the
    /// CPU backend runs and what the GPU is tested against.
    fn reference_step(&self, step: u32, tensor: TensorStep<'_>);
    /// Bytes a clipped fused step moves per f32 element (the cost model `clipstep bench`
    /// reports bandwidth by): the norm's gradient read 4, the update's gradient read 4,
    /// the parameter read and written 8, and each state this configuration keeps read and
    /// written 8. A rule with more passes (LARS, LAMB: the trust pass) says its own.
    fn bytes_per_element(&self) -> u64 {
        let states = self.state_names().iter().flatten().count() as u64;
        16 + 8 * states
    }
    /// Whether one tensor's update depends on the whole tensor (a per-tensor trust ratio:
    /// LARS, LAMB), not on each element alone.
    const TENSORWISE: bool = false;
    /// The one-group optimizer of this config over every tensor of `params`.
    fn build(&self, params: &ParamSet) -> Result<Self::Optimizer> {
        let names = params.tensors().iter().map(|t| t.name.clone());
        Self::optimizer(params, vec![ParamGroup::new(names, self.clone())])
    }
}

/// A rule config's optimizer type, implemented beside each rule by the `optimizer!` macro
/// that declares the type.
pub trait RuleOptimizer: Sized {
    /// The optimizer type users name for this rule.
    type Optimizer: Optimizer + 'static;
    /// The optimizer over `params` with parameter groups (PyTorch's `param_groups`), each
    /// config checked with PyTorch's rules ([`Error::InvalidHyperparameter`]).
    fn optimizer(params: &ParamSet, groups: Vec<ParamGroup<Self>>) -> Result<Self::Optimizer>;
}

/// One tensor's step for [`RuleConfig::reference_step`]: its parameters, its (clipped,
/// unscaled) gradients, and its states by slot (`None`: a slot the config leaves unused).
pub struct TensorStep<'a> {
    /// The parameters, updated in place.
    pub params: &'a mut [f32],
    /// The gradients the rule applies.
    pub grads: &'a [f32],
    /// The states by slot, updated in place.
    pub states: [Option<&'a mut [f32]>; 3],
}

/// Code run for every registered rule's config type ([`crate::for_each_rule`]).
pub trait RuleVisitor {
    /// Called once per registered config type.
    fn visit<C: RuleConfig>(&mut self);
}

/// Declares an optimizer type over the engine with rule `$config`, implementing
/// [`Optimizer`] by delegation.
macro_rules! optimizer {
    ($(#[$doc:meta])* $name:ident($config:ty)) => {
        $(#[$doc])*
        pub struct $name(crate::optim::engine::Engine<$config>);

        impl $name {
            /// An optimizer for `params` with zeroed state, one parameter group of every
            /// tensor; `config` is checked with PyTorch's rules
            /// ([`crate::Error::InvalidHyperparameter`]).
            pub fn new(params: &crate::storage::param_set::ParamSet, config: $config) -> crate::error::Result<Self> {
                let names = params.tensors().iter().map(|t| t.name.clone());
                Self::with_groups(params, vec![crate::optim::ParamGroup::new(names, config)])
            }

            /// An optimizer with parameter groups (PyTorch's `param_groups`): every tensor
            /// in exactly one group, each group's config checked with PyTorch's rules, all
            /// keeping the same states ([`crate::Error::InvalidGroups`] otherwise).
            pub fn with_groups(
                params: &crate::storage::param_set::ParamSet,
                groups: Vec<crate::optim::ParamGroup<$config>>,
            ) -> crate::error::Result<Self> {
                Self::with_state_dtype(params, groups, crate::dtype::Dtype::F32)
            }

            /// [`Self::with_groups`] keeping the optimizer's states in `state_dtype`: f32, or
            /// for Adam and AdamW bf16 (half the state memory; each write rounded
            /// stochastically, the random bits of state k of element e at step t being
            /// `reference::rounding_bits(seed ^ 0x9e3779b9·(k+1), t, e)` with the step's
            /// rounding seed, 0 under nearest-even rounding). Other rules and f16 states are
            /// [`crate::Error::NotSupported`]; bf16 states need a GPU.
            pub fn with_state_dtype(
                params: &crate::storage::param_set::ParamSet,
                groups: Vec<crate::optim::ParamGroup<$config>>,
                state_dtype: crate::dtype::Dtype,
            ) -> crate::error::Result<Self> {
                crate::optim::engine::Engine::new(params, groups, state_dtype).map($name)
            }

            /// The hyperparameters of the first parameter group.
            pub fn config(&self) -> &$config {
                &self.0.groups[0].config
            }

            /// The parameter groups (PyTorch's `param_groups`).
            pub fn param_groups(&self) -> &[crate::optim::ParamGroup<$config>] {
                &self.0.groups
            }
        }

        impl crate::optim::Optimizer for $name {
            fn step(
                &mut self,
                params: &mut crate::storage::param_set::ParamSet,
                options: &crate::optim::StepOptions,
            ) -> crate::error::Result<crate::report::Report> {
                self.0.step(params, options)
            }
            fn encode_step(
                &mut self,
                encoder: &mut wgpu::CommandEncoder,
                params: &mut crate::storage::param_set::ParamSet,
                options: &crate::optim::StepOptions,
            ) -> crate::error::Result<crate::report::Report> {
                self.0.encode_step(encoder, params, options)
            }
            fn norm_partial(
                &self,
                params: &mut crate::storage::param_set::ParamSet,
                norm: crate::options::Norm,
                nonfinite: crate::options::Nonfinite,
                rank: usize,
            ) -> crate::error::Result<crate::shard::ShardPartial> {
                self.0.norm_partial(params, norm, nonfinite, rank)
            }
            fn learning_rate(&self) -> f64 {
                self.0.groups[0].config.lr
            }
            fn set_learning_rate(&mut self, lr: f64) -> crate::error::Result<()> {
                let name = <$config as crate::optim::RuleConfig>::NAME;
                crate::optim::check_non_negative(name, "lr", lr)?;
                self.0.groups.iter_mut().for_each(|g| g.config.lr = lr);
                Ok(())
            }
            fn groups(&mut self) -> crate::optim::GroupRates<'_> {
                crate::optim::GroupRates { ops: &mut self.0 }
            }
            fn states(&self) -> crate::optim::States<'_> {
                crate::optim::States { ops: &self.0 }
            }
            fn checkpoint(&mut self) -> crate::optim::CheckpointIo<'_> {
                crate::optim::CheckpointIo { ops: &mut self.0 }
            }
            fn loss_scaling(&mut self) -> crate::optim::LossScaling<'_> {
                crate::optim::LossScaling { ops: &mut self.0 }
            }
        }

        impl crate::optim::RuleOptimizer for $config {
            type Optimizer = $name;
            fn optimizer(
                params: &crate::storage::param_set::ParamSet,
                groups: Vec<crate::optim::ParamGroup<$config>>,
            ) -> crate::error::Result<$name> {
                $name::with_groups(params, groups)
            }
        }

        impl crate::optim::engine::LearningRate for $config {
            fn lr(&self) -> f64 {
                self.lr
            }
            fn set_lr(&mut self, lr: f64) {
                self.lr = lr;
            }
        }
    };
}
pub(crate) use optimizer;

/// `Err(InvalidHyperparameter)` unless `ok`.
pub(crate) fn check(
    optimizer: &'static str,
    name: &'static str,
    value: f64,
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

/// `x` must be finite and ≥ 0 (PyTorch: "Invalid learning rate", "Invalid weight_decay value", ...).
pub(crate) fn check_non_negative(
    optimizer: &'static str,
    name: &'static str,
    x: f64,
) -> Result<()> {
    check(
        optimizer,
        name,
        x,
        x.is_finite() && x >= 0.0,
        "must be finite and >= 0",
    )
}

/// PyTorch's checks of the Adam family (Adam, AdamW, Adamax, ...), with its messages'
/// parameter names: lr, eps and weight_decay finite and ≥ 0, each beta in [0, 1).
pub(crate) fn check_adam_family(
    name: &'static str,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
) -> Result<()> {
    check_non_negative(name, "lr", lr)?;
    check_non_negative(name, "eps", eps)?;
    let in_unit = |b: f64| (0.0..1.0).contains(&b);
    check(
        name,
        "beta parameter at index 0",
        betas.0,
        in_unit(betas.0),
        "must be in [0, 1)",
    )?;
    check(
        name,
        "beta parameter at index 1",
        betas.1,
        in_unit(betas.1),
        "must be in [0, 1)",
    )?;
    check_non_negative(name, "weight_decay", weight_decay)
}
