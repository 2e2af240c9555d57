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

mod declare;
mod engine;
#[cfg(test)]
mod golden;
mod groups;
mod handles;
pub(crate) mod loss_scale;
pub mod rules;

pub use groups::ParamGroup;
pub use handles::{CheckpointIo, GroupRates, LossScaling, States};

pub(crate) use declare::{optimizer, rule, rule_kernel};

use crate::dtype::Rounding;
use crate::error::{Error, Result};
use crate::reference::TensorStep;

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

/// What every rule's optimizer type ([`RuleDeclaration::Optimizer`]) shares: PyTorch's `step`
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
        &mut self, encoder: &mut wgpu::CommandEncoder, params: &mut ParamSet, options: &StepOptions,
    ) -> Result<Report>;
    /// Phase 1 of a sharded global norm ([`crate::shard`]) on rank `rank`: the exact power
    /// sum of the tensors this optimizer counts in the norm (groups with `in_norm`; a
    /// [replicated](ParamGroup::replicated) group on rank 0 only), with the NaN/±Inf flags
    /// of every tensor, in `norm` under `nonfinite`. One norm pass and one readback.
    fn norm_partial(
        &self, params: &mut ParamSet, norm: Norm, nonfinite: Nonfinite, rank: usize,
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
    RuleDeclaration
    + Clone
    + std::fmt::Debug
    + Default
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The states this configuration keeps, by state slot (`None`: a slot it leaves unused;
    /// by default it keeps every slot of [`RuleDeclaration::STATES`]).
    fn state_names(&self) -> [Option<&'static str>; 3] {
        std::array::from_fn(|slot| Self::STATES.get(slot).copied())
    }
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
    /// Whether the states are quantized (8-bit AdamW): a state then moves by a whole code
    /// where its new value crosses a rounding bound, so two backends agree step after step
    /// only from bit-identical inputs (a clip coefficient one ulp apart may flip a code).
    const QUANTIZED: bool = false;
    /// Whether the rule steps 2-D tensors only (Muon orthogonalizes each matrix): an
    /// optimizer refuses any other shape, and the registry's harnesses, which step sets of
    /// vectors, leave such a rule to its own tests and rows.
    const MATRICES: bool = false;
    /// The one-group optimizer of this config over every tensor of `params`.
    fn build(&self, params: &ParamSet) -> Result<Self::Optimizer> {
        let names = params.tensors().iter().map(|t| t.name.clone());
        Self::optimizer(params, vec![ParamGroup::new(names, self.clone())])
    }
}

/// What a rule's declaration (`rule!` in its `src/optim/rules/<rule>.rs`) gives its
/// config: its name, its state slots, its examples and its optimizer type.
pub trait RuleDeclaration: Sized {
    /// The rule's name, as in PyTorch (or Optax): also the optimizer tag of checkpoints.
    const NAME: &'static str;
    /// The rule's state slots, in order, by PyTorch's state names (a config may leave some
    /// unused: [`RuleConfig::state_names`]).
    const STATES: &'static [&'static str];
    /// Configurations that between them exercise each option of the rule (the test matrix
    /// runs every one under every clip). The first is the rule's representative: many
    /// options at once, the one `clipstep verify` checks on every case and set, the 100-step
    /// trajectory tests follow, and `clipstep bench` times (as `scripts/bench_torch.py` runs
    /// PyTorch's twin).
    fn examples() -> Vec<Self>;
    /// The optimizer type users name for this rule.
    type Optimizer: Optimizer + 'static;
    /// The optimizer over `params` with parameter groups (PyTorch's `param_groups`), each
    /// config checked with PyTorch's rules ([`Error::InvalidHyperparameter`]).
    fn optimizer(params: &ParamSet, groups: Vec<ParamGroup<Self>>) -> Result<Self::Optimizer>;
}

/// Code run for every registered rule's config type ([`crate::for_each_rule`]).
pub trait RuleVisitor {
    /// Called once per registered config type.
    fn visit<C: RuleConfig>(&mut self);
}

/// `Err(InvalidHyperparameter)` unless `ok`.
pub(crate) fn check(
    optimizer: &'static str, name: &'static str, value: f64, ok: bool, rule: &'static str,
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
    optimizer: &'static str, name: &'static str, x: f64,
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
    name: &'static str, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64,
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
