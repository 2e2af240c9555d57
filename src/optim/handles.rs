//! What an [`Optimizer`](super::Optimizer) offers beyond its step, grouped by concern, each
//! reached through one trait method so a `Box<dyn Optimizer>` can do everything:
//! [`GroupRates`] (per-group learning rates), [`States`] (state tensors, the step count, and
//! saving them), [`CheckpointIo`] (loading them) and [`LossScaling`] (the dynamic loss scale
//! on the device).

use std::path::Path;

use super::check_non_negative;
use super::engine::Ops;
use crate::checkpoint::LoadOptions;
use crate::error::Result;
use crate::optim::loss_scale::LossScaler;

/// The learning rate of each parameter group ([`Optimizer::groups`](super::Optimizer::groups)).
pub struct GroupRates<'a> {
    pub(crate) ops: &'a mut dyn Ops,
}

impl GroupRates<'_> {
    /// Parameter groups.
    pub fn len(&self) -> usize {
        self.ops.num_groups()
    }

    /// Whether there is no group (never: an optimizer has at least one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The learning rate of group `group` for the next step.
    pub fn learning_rate(&self, group: usize) -> Result<f64> {
        self.ops.group_learning_rate(group)
    }

    /// The names of the tensors in group `group` (as the optimizer was built with them).
    pub fn tensors(&self, group: usize) -> Result<&[String]> {
        self.ops.group_tensors(group)
    }

    /// Sets the learning rate of group `group` for the next step (a per-group schedule, as
    /// PyTorch's schedulers set each `param_groups[i]["lr"]`): an in-stream write of the
    /// group table with the next step, nothing rebuilt.
    pub fn set_learning_rate(&mut self, group: usize, lr: f64) -> Result<()> {
        check_non_negative(self.ops.name(), "lr", lr)?;
        self.ops.set_group_learning_rate(group, lr)
    }
}

/// The optimizer's state: its tensors, its step count, and all of it as checkpoint bytes or
/// files ([`Optimizer::states`](super::Optimizer::states)).
pub struct States<'a> {
    pub(crate) ops: &'a dyn Ops,
}

impl States<'_> {
    /// The names of the states this configuration keeps (e.g. `["exp_avg", "exp_avg_sq"]`),
    /// those of every parameter group.
    pub fn names(&self) -> Vec<&'static str> {
        self.ops.state_names()
    }

    /// One state (e.g. `"exp_avg"`), the tensors that keep it concatenated in the set's
    /// order: every tensor, unless only some parameter groups keep the state (Adam's
    /// `max_exp_avg_sq` in the amsgrad groups; [`States::tensors`] names them). A host sync.
    pub fn get(&self, name: &str) -> Result<Vec<f32>> {
        self.ops.state(name)
    }

    /// The names of the tensors that keep state `name`, in the set's order: those of the
    /// groups whose configuration keeps it, as in PyTorch's `optimizer.state`.
    pub fn tensors(&self, name: &str) -> Result<Vec<String>> {
        self.ops.state_tensors(name)
    }

    /// Bytes the states take on the device: `Σ_state elements · element size`, where a
    /// state every group keeps has the set's packed length (its tensors and their
    /// alignment padding) and a state only some groups keep has their tensors' 64-element
    /// blocks only; the element size is 4 (f32 states) or 2 (bf16). On the CPU backend,
    /// what a device would hold.
    pub fn bytes(&self) -> u64 {
        self.ops.state_bytes()
    }

    /// Steps taken, skipped steps excluded. A host sync on a GPU.
    pub fn step_count(&self) -> Result<u32> {
        self.ops.step_count()
    }

    /// Config, step count and states as checkpoint bytes (a host sync); bit-exact.
    pub fn save(&self) -> Result<Vec<u8>> {
        self.ops.save()
    }

    /// [`States::save`] to a file, atomically: the bytes go to a temporary file in the
    /// same directory, are flushed to disk, and replace `path` by a rename, so a write cut
    /// short (full disk, file-size limit, a crash) leaves the previous checkpoint intact.
    pub fn save_to(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::checkpoint::write_atomically(path.as_ref(), &self.save()?)
    }
}

/// Loading a checkpoint [`States::save`] wrote, from bytes or a file
/// ([`Optimizer::checkpoint`](super::Optimizer::checkpoint)).
pub struct CheckpointIo<'a> {
    pub(crate) ops: &'a mut dyn Ops,
}

impl CheckpointIo<'_> {
    /// Restores [`States::save`]'s bytes, matching tensors by name (any order); every
    /// tensor of the set must be in the checkpoint and every tensor of the checkpoint in the
    /// set, with the same shapes. A checkpoint of another version, optimizer or state set, a
    /// tensor missing on either side, or a corrupted file is [`crate::Error::Checkpoint`]
    /// and changes nothing. Files of the earlier binary format (version 2) still load.
    pub fn load(&mut self, bytes: &[u8]) -> Result<()> {
        self.load_with(bytes, &LoadOptions::default())
    }

    /// [`CheckpointIo::load`] with a policy for tensors missing from the checkpoint (fresh
    /// state) or absent from the set (ignored): a layer added or removed since the save.
    pub fn load_with(&mut self, bytes: &[u8], options: &LoadOptions) -> Result<()> {
        self.ops.load(bytes, options)
    }

    /// [`CheckpointIo::load`] from a file.
    pub fn load_from(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = std::fs::read(path)?;
        self.load(&bytes)
    }

    /// [`CheckpointIo::load_with`] from a file.
    pub fn load_from_with(&mut self, path: impl AsRef<Path>, options: &LoadOptions) -> Result<()> {
        let bytes = std::fs::read(path)?;
        self.load_with(&bytes, options)
    }
}

/// The dynamic loss scale kept on the device ([`Optimizer::loss_scaling`](super::Optimizer::loss_scaling)).
pub struct LossScaling<'a> {
    pub(crate) ops: &'a mut dyn Ops,
}

impl LossScaling<'_> {
    /// Turns the dynamic loss scale on (`Some`: the scale starts at `init_scale`, the
    /// trackers at zero) or off (`None`: steps unscale by `StepOptions::grad_scale` again).
    /// Takes effect from the next recorded step; see [`LossScaler`] for the rule. A step
    /// under a scaler needs `nonfinite = Skip` and `grad_scale = 1`
    /// ([`crate::Error::InvalidLossScaler`] otherwise).
    pub fn set_scaler(&mut self, scaler: Option<LossScaler>) -> Result<()> {
        self.ops.set_loss_scaler(scaler)
    }

    /// The loss scaler's settings, if one is set.
    pub fn scaler(&self) -> Option<LossScaler> {
        self.ops.loss_scaler()
    }

    /// Sets the current loss scale by hand (`GradScaler.update(new_scale)`); the trackers
    /// are left as they are. Needs a scaler.
    pub fn set_scale(&mut self, scale: f32) -> Result<()> {
        self.ops.set_loss_scale(scale)
    }

    /// The current loss scale (1 without a scaler). A host sync on a GPU: a training loop
    /// reads it on the device instead, from [`LossScaling::binding`] (it is also in every
    /// step's report).
    pub fn scale(&self) -> Result<f32> {
        self.ops.loss_scale()
    }

    /// Where the current loss scale lives on the device: a buffer and the byte offset of
    /// one f32, updated by each step's finalize, for a caller's kernel that multiplies the
    /// loss by it (no host round trip). `None` on the CPU backend. The buffer is a handle
    /// to the optimizer's own (cloning a `wgpu::Buffer` copies no data).
    pub fn binding(&self) -> Option<(wgpu::Buffer, u64)> {
        self.ops
            .loss_scale_binding()
            .map(|(buffer, offset)| (buffer.clone(), offset))
    }
}
