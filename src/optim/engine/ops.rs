//! The engine's non-step operations behind one object-safe trait, so the handles a
//! `dyn Optimizer` offers (`crate::optim::handles`) reach every rule's engine.

use super::{Engine, Rule};
use crate::checkpoint::LoadOptions;
use crate::error::Result;
use crate::optim::loss_scale::LossScaler;

/// What the optimizer handles ([`super::handles`]) reach through a `dyn Optimizer`: the
/// engine's non-step operations, object safe, implemented once for every rule.
pub(crate) trait Ops {
    /// The rule's name (error messages).
    fn name(&self) -> &'static str;
    fn num_groups(&self) -> usize;
    fn group_learning_rate(&self, group: usize) -> Result<f64>;
    fn group_tensors(&self, group: usize) -> Result<&[String]>;
    fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> Result<()>;
    fn state_names(&self) -> Vec<&'static str>;
    fn state(&self, name: &str) -> Result<Vec<f32>>;
    fn state_tensors(&self, name: &str) -> Result<Vec<String>>;
    fn state_bytes(&self) -> u64;
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
    fn group_tensors(&self, group: usize) -> Result<&[String]> {
        Ok(&self.group(group)?.tensors)
    }
    fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> Result<()> {
        self.group_mut(group)?.config.set_lr(lr);
        Ok(())
    }
    fn state_names(&self) -> Vec<&'static str> {
        super::slot_names(&self.groups)
            .into_iter()
            .flatten()
            .collect()
    }
    fn state_tensors(&self, name: &str) -> Result<Vec<String>> {
        Engine::state_tensors(self, name)
    }
    fn state_bytes(&self) -> u64 {
        Engine::state_bytes(self)
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
