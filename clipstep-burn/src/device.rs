//! One wgpu device for burn and clipstep.

use burn::backend::wgpu::{graphics::AutoGraphicsApi, init_setup, RuntimeOptions, WgpuDevice};
use burn::tensor::Device;

use crate::error::Result;

/// burn's default wgpu device and a clipstep [`Context`](clipstep::Context) on the same
/// `wgpu::Device` and queue: cubecl creates the device (`init_setup`, the adapter's full
/// limits, as burn does by itself), clipstep wraps it with
/// [`Context::from_device`](clipstep::Context::from_device), which checks the limits its
/// kernels need. Returns the context and burn's device with autodiff, for the model.
/// Call once, before burn touches the default device.
pub fn shared_device() -> Result<(clipstep::Context, Device)> {
    let wgpu_device = WgpuDevice::default();
    let setup = init_setup::<AutoGraphicsApi>(&wgpu_device, RuntimeOptions::default());
    let ctx = clipstep::Context::from_device(setup.device.clone(), setup.queue.clone())?;
    let device = Device::from(wgpu_device).autodiff();
    Ok((ctx, device))
}
