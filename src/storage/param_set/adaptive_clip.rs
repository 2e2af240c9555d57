//! [`ParamSet::clip_adaptive`]: adaptive gradient clipping (Brock et al. 2021, "High-
//! Performance Large-Scale Image Recognition Without Normalization"), unit by unit, in one
//! dispatch per slab.

use crate::error::{Error, Result};
use crate::kernels::abi::AgcOp;
use crate::kernels::agc::AgcKernel;
use crate::reference::{self, Units};
use crate::storage::arena::Arena;
use crate::storage::param_set::ParamSet;

impl ParamSet {
    /// Adaptive gradient clipping in place (Optax's `adaptive_grad_clip(clipping, eps)`,
    /// timm's `adaptive_clip_grad(clip_factor, eps)`), submitted: for each unit u of each
    /// tensor (a row, a column or the whole tensor, as `units` says),
    /// `g_u ← g_u · (max_u / max(‖g_u‖, 1e-6))` unless `‖g_u‖ < max_u`, with
    /// `max_u = clipping · max(‖p_u‖, eps)`.
    ///
    /// One workgroup per unit: each invocation sums a strided share in f32, then a fixed
    /// tree; the same bits every run, within the clip tolerance of the f64 reference.
    /// Runs on clipstep's slabs and on a caller's pools alike ([`Error::NotSupported`] for a
    /// tensor spanning slabs) of f32 tensors ([`Error::WrongDtype`] when a tensor is
    /// 16-bit); `clipping` must be finite and > 0, `eps` finite and ≥ 0.
    pub fn clip_adaptive(&mut self, clipping: f32, eps: f32, units: Units) -> Result<()> {
        self.run_adaptive(None, clipping, eps, units)
    }

    /// Records [`ParamSet::clip_adaptive`] into `encoder`.
    pub fn encode_clip_adaptive(
        &mut self, encoder: &mut wgpu::CommandEncoder, clipping: f32, eps: f32, units: Units,
    ) -> Result<()> {
        self.run_adaptive(Some(encoder), clipping, eps, units)
    }

    fn run_adaptive(
        &mut self, encoder: Option<&mut wgpu::CommandEncoder>, clipping: f32, eps: f32,
        units: Units,
    ) -> Result<()> {
        let bad = |name: &'static str, value: f32, rule: &'static str| {
            Err(Error::InvalidHyperparameter {
                optimizer: "adaptive_clip",
                name,
                value: f64::from(value),
                rule,
            })
        };
        if !(clipping.is_finite() && clipping > 0.0) {
            return bad("clipping", clipping, "must be finite and > 0");
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return bad("eps", eps, "must be finite and >= 0");
        }
        if let Some(t) = self.tensors().iter().find(|t| t.dtype.is_16_bit()) {
            return Err(Error::WrongDtype {
                what: "clip_adaptive",
                needs: "f32 tensors (its units read the parameters as f32)",
                set: t.dtype,
            });
        }
        let layout = self.layout.clone();
        let Some(device) = self.device.as_mut() else {
            return self.adaptive_on_host(clipping, eps, units);
        };
        let slot = &mut device.agc[units as usize];
        if slot.is_none() {
            let gpu = device.gpu.clone();
            *slot = Some(gpu.scoped(|| AgcKernel::new(&gpu, &layout, units))?);
        }
        let kernel = slot.as_ref().expect("built above");
        let op = AgcOp {
            clipping,
            eps,
            ..Default::default()
        };
        let (gpu, slabs) = (&device.gpu, &device.slabs);
        let record = |encoder: &mut wgpu::CommandEncoder| -> Result<()> {
            gpu.write_in_stream(encoder, &[kernel.op_write(&op)])?;
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("adaptive clip"),
                timestamp_writes: None,
            });
            kernel.encode(&mut pass, gpu, slabs);
            Ok(())
        };
        match encoder {
            Some(encoder) => gpu.scoped(|| record(encoder)),
            None => gpu.submit_atomic(record),
        }
    }

    /// The CPU backend's twin: the reference, tensor by tensor.
    fn adaptive_on_host(&mut self, clipping: f32, eps: f32, units: Units) -> Result<()> {
        let (Arena::Cpu(params), Arena::Cpu(grads)) = (&self.params, &mut self.grads) else {
            unreachable!("a set without a device holds host arenas")
        };
        // Every shape checked before any gradient changes.
        for t in &self.layout.tensors {
            if reference::units_of(&t.shape, units).is_none() {
                return Err(Error::InvalidShape {
                    tensor: t.name.clone(),
                    shape: t.shape.clone(),
                    why: "Optax's unit convention defines ranks up to 5",
                });
            }
        }
        for t in &self.layout.tensors {
            let range = t.offset as usize..(t.offset + t.numel) as usize;
            reference::adaptive_clip(
                &params[range.clone()],
                &mut grads[range],
                &t.shape,
                clipping,
                eps,
                units,
            );
        }
        Ok(())
    }
}
