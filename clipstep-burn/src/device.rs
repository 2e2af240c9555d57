//! One wgpu device for burn and clipstep.

use std::sync::Mutex;

use burn::backend::wgpu::WgpuDevice;
use burn::tensor::Device;
use cubecl::wgpu::{try_init_setup, AutoGraphicsApi, RuntimeOptions};

use crate::error::{Error, Result};

/// The device [`shared_device`] set up, and clipstep's Context on it (once per process:
/// cubecl registers a device's runtime once).
static SHARED: Mutex<Option<(clipstep::Context, WgpuDevice)>> = Mutex::new(None);

/// burn's default wgpu device and a clipstep [`Context`](clipstep::Context) on the same
/// `wgpu::Device` and queue: cubecl creates the device (`try_init_setup`, the adapter's full
/// limits, as burn does by itself), clipstep wraps it with
/// [`Context::from_device`](clipstep::Context::from_device), which checks the limits its
/// kernels need. Returns the context and burn's device with autodiff, for the model.
///
/// Call it before burn touches its default device; later calls return the same pair. If
/// burn set up its default device first (a tensor made on `Device::default()`), cubecl
/// cannot hand that device over: [`Error::DeviceTaken`].
pub fn shared_device() -> Result<(clipstep::Context, Device)> {
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((ctx, wgpu_device)) = shared.as_ref() {
        return Ok((ctx.clone(), Device::from(wgpu_device.clone()).autodiff()));
    }
    let wgpu_device = WgpuDevice::default();
    let setup = try_init_setup::<AutoGraphicsApi>(&wgpu_device, RuntimeOptions::default())
        .map_err(|e| Error::DeviceTaken {
            reason: format!("{e:?}"),
        })?;
    let ctx = clipstep::Context::from_device(setup.device.clone(), setup.queue.clone())?;
    *shared = Some((ctx.clone(), wgpu_device.clone()));
    Ok((ctx, Device::from(wgpu_device).autodiff()))
}

/// Checks that `ctx` and a parameter's burn device `on` are the pair [`shared_device`] set
/// up: [`Error::ForeignDevice`] for a tensor on another burn device,
/// [`Error::ForeignContext`] for a Context other than (a clone of) the one it returned.
pub(crate) fn check_shared(ctx: &clipstep::Context, name: &str, on: &cubecl::Device) -> Result<()> {
    let shared = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some((shared_ctx, shared_device)) = shared.as_ref() else {
        return Err(Error::ForeignDevice {
            name: name.to_string(),
            device: format!("{on:?}"),
        });
    };
    if *on != cubecl::Device::from(shared_device.clone()) {
        return Err(Error::ForeignDevice {
            name: name.to_string(),
            device: format!("{on:?}"),
        });
    }
    if ctx.is_same(shared_ctx) {
        Ok(())
    } else {
        Err(Error::ForeignContext)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor};

    use super::*;

    /// burn's default device first, then `shared_device`: a typed error that says what to
    /// do, not cubecl's panic. (The only test of this binary: it needs burn to have set up
    /// the default device before clipstep_burn asks for it.)
    #[test]
    fn after_burn_took_the_default_device_it_is_an_error() {
        let taken = Tensor::<1>::zeros([4], &Device::default());
        assert_eq!(taken.into_data().num_elements(), 4);
        let err = shared_device().err().expect("the device is taken");
        assert!(matches!(err, Error::DeviceTaken { .. }), "{err}");
        assert!(err.to_string().contains("before any burn tensor"), "{err}");
    }
}
