//! The dynamic loss scaler's side of the engine: turning it on and off, setting and reading
//! the scale kept in the device step state, and where that scale lives for a caller's kernel.

use super::{Engine, Rule};
use crate::error::{Error, Result};
use crate::kernels::abi::DeviceStepState;
use crate::optim::loss_scale::{check_scale, LossScaler};

impl<R: Rule> Engine<R> {
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
    pub(super) fn write_scale_state(
        &mut self, scale: f32, growth: u32, hysteresis: u32,
    ) -> Result<()> {
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
}
