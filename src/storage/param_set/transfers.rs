//! A parameter set's transfers: uploads and downloads of parameters and gradients, whole or
//! by tensor, as f32 values or 16-bit bits, on the device or the CPU backend.

use super::{gpu_bindings, host_values, ParamSet};
use crate::dtype::Dtype;
use crate::error::Result;
use crate::kernels::host;
use crate::storage::arena::{
    check_transfer, read_all, read_tensor, write_all, write_tensor, Arena,
};
use crate::storage::typed_io::{self, Target};

impl ParamSet {
    /// Writes every parameter: `data` is all tensors concatenated in order. A 16-bit
    /// tensor's parameters become `data` rounded to nearest even (and with master weights,
    /// its master becomes `data` itself).
    pub fn upload_params(&mut self, data: &[f32]) -> Result<()> {
        self.write_values(None, data, true)
    }

    /// Writes every gradient: `data` is all tensors concatenated in order (a 16-bit
    /// tensor's rounded to nearest even).
    pub fn upload_grads(&mut self, data: &[f32]) -> Result<()> {
        self.write_values(None, data, false)
    }

    /// Writes one tensor's parameters (see [`ParamSet::upload_params`]).
    pub fn upload_param(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let t = self.layout.index(name)?;
        self.write_values(Some(t), data, true)
    }

    /// Writes one tensor's gradient (see [`ParamSet::upload_grads`]).
    pub fn upload_grad(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let t = self.layout.index(name)?;
        self.write_values(Some(t), data, false)
    }

    /// Reads every parameter back (all tensors concatenated in order): f32 parameters, a
    /// 16-bit tensor's master weights, or without master weights its 16-bit parameters
    /// widened. Syncs with the device.
    pub fn download_params(&self) -> Result<Vec<f32>> {
        self.read_values(None, true)
    }

    /// Reads every gradient back (all tensors concatenated in order; 16-bit gradients
    /// widened exactly). Syncs with the device.
    pub fn download_grads(&self) -> Result<Vec<f32>> {
        self.read_values(None, false)
    }

    /// Reads one tensor's parameters back (see [`ParamSet::download_params`]).
    pub fn download_param(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.layout.index(name)?;
        self.read_values(Some(t), true)
    }

    /// Reads one tensor's gradient back.
    pub fn download_grad(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.layout.index(name)?;
        self.read_values(Some(t), false)
    }

    /// Whether 16-bit tensors keep f32 master weights ([`crate::ArenaOptions::master_weights`]).
    pub fn has_master_weights(&self) -> bool {
        self.model.iter().any(Option::is_some) || !self.host_model.is_empty()
    }

    /// Writes every gradient of a set whose tensors are all 16-bit as bit patterns (each
    /// tensor's f16 or bf16), all tensors concatenated in order.
    pub fn upload_grads_bits(&mut self, bits: &[u16]) -> Result<()> {
        self.write_grad_bits(None, bits)
    }

    /// Writes one 16-bit tensor's gradient as bit patterns.
    pub fn upload_grad_bits(&mut self, name: &str, bits: &[u16]) -> Result<()> {
        let t = self.layout.index(name)?;
        self.write_grad_bits(Some(t), bits)
    }

    /// Reads every gradient of a set whose tensors are all 16-bit as bit patterns. Syncs.
    pub fn download_grads_bits(&self) -> Result<Vec<u16>> {
        self.read_bits(None, false)
    }

    /// Reads one 16-bit tensor's gradient as bit patterns. Syncs.
    pub fn download_grad_bits(&self, name: &str) -> Result<Vec<u16>> {
        self.read_bits(Some(self.layout.index(name)?), false)
    }

    /// Reads the 16-bit parameters the model reads (the rounded copy of the master
    /// weights, or the parameters themselves) of a set whose tensors are all 16-bit, as
    /// bit patterns. Syncs.
    pub fn download_params_bits(&self) -> Result<Vec<u16>> {
        self.read_bits(None, true)
    }

    /// Reads one 16-bit tensor's parameters as the model reads them, as bit patterns.
    pub fn download_param_bits(&self, name: &str) -> Result<Vec<u16>> {
        self.read_bits(Some(self.layout.index(name)?), true)
    }

    /// Writes `data` (the covered tensors concatenated) into the parameters (`params`) or
    /// the gradients: f32 arenas as they always were; with 16-bit tensors, each tensor in
    /// its own type (and with master weights, parameters into the master and the copy).
    pub(super) fn write_values(
        &mut self, t: Option<usize>, data: &[f32], params: bool,
    ) -> Result<()> {
        let (role, what) = match params {
            true => ("params", "upload_params"),
            false => ("grads", "upload_grads"),
        };
        self.check_in_order(what)?;
        if !self.has_16_bit() {
            let arena = if params {
                &mut self.params
            } else {
                &mut self.grads
            };
            return match t {
                Some(t) => write_tensor(self.ctx.gpu(), &self.layout, arena, t, data, role),
                None => write_all(self.ctx.gpu(), &self.layout, arena, data, role),
            };
        }
        typed_io::check_len(&self.layout, t, data.len(), role)?;
        if self.device.is_none() {
            self.host_write(t, data, params);
            return Ok(());
        }
        let gpu = self.gpu_of(what)?;
        let arena = if params { &self.params } else { &self.grads };
        let all = 0..self.layout.slabs.len();
        let bindings = gpu_bindings(arena);
        check_transfer(
            gpu,
            &self.layout,
            bindings,
            all,
            wgpu::BufferUsages::COPY_DST,
            role,
        )?;
        let writes = if params {
            // The model's parameters, then the master weights of 16-bit slabs (an f32 slab
            // is its own model).
            let masters: Vec<Target<'_>> = self
                .param_targets()
                .into_iter()
                .zip(&self.model)
                .map(|(target, m)| m.as_ref().and(target))
                .collect();
            let mut writes = typed_io::value_writes(&self.layout, &self.model_targets(), t, data);
            writes.extend(typed_io::value_writes(&self.layout, &masters, t, data));
            writes
        } else {
            typed_io::value_writes(&self.layout, &self.typed(arena), t, data)
        };
        typed_io::upload(gpu, &writes)
    }

    /// The covered tensors' parameters (`params`: f32, master weights, or 16-bit widened)
    /// or gradients, concatenated. Syncs.
    pub(super) fn read_values(&self, t: Option<usize>, params: bool) -> Result<Vec<f32>> {
        let (role, what, arena) = match params {
            true => ("params", "download_params", &self.params),
            false => ("grads", "download_grads", &self.grads),
        };
        if !self.has_16_bit() {
            return match t {
                Some(t) => read_tensor(self.ctx.gpu(), &self.layout, arena, t, role),
                None => read_all(self.ctx.gpu(), &self.layout, arena, role),
            };
        }
        if self.device.is_none() {
            return Ok(self.host_read(t, host_values(arena)));
        }
        let targets = match params {
            true => self.param_targets(),
            false => self.typed(arena),
        };
        typed_io::read_values(self.gpu_of(what)?, &self.layout, &targets, t)
    }

    pub(super) fn write_grad_bits(&mut self, t: Option<usize>, bits: &[u16]) -> Result<()> {
        self.check_16_bit(t, "upload_grads_bits")?;
        self.check_in_order("upload_grads_bits")?;
        typed_io::check_len(&self.layout, t, bits.len(), "grads")?;
        if self.device.is_none() {
            let values: Vec<f32> = bits
                .iter()
                .zip(self.covered_dtypes(t))
                .map(|(&h, d)| d.widen(h))
                .collect();
            self.host_write(t, &values, false);
            return Ok(());
        }
        let gpu = self.gpu_of("upload_grads_bits")?;
        let writes = typed_io::bit_writes(&self.layout, &self.typed(&self.grads), t, bits);
        typed_io::upload(gpu, &writes)
    }

    pub(super) fn read_bits(&self, t: Option<usize>, params: bool) -> Result<Vec<u16>> {
        let what = if params {
            "download_params_bits"
        } else {
            "download_grads_bits"
        };
        self.check_16_bit(t, what)?;
        if self.device.is_none() {
            // The host values of 16-bit tensors are exact in 16 bits: rounding recovers them.
            let values = match (params, self.host_model.is_empty()) {
                (false, _) => host_values(&self.grads),
                (true, true) => host_values(&self.params),
                (true, false) => &self.host_model,
            };
            let values = self.host_read(t, values);
            let dtypes = self.covered_dtypes(t);
            return Ok(values
                .iter()
                .zip(dtypes)
                .map(|(&x, d)| d.round(x))
                .collect());
        }
        let gpu = self.gpu_of(what)?;
        let targets = match params {
            true => self.model_targets(),
            false => self.typed(&self.grads),
        };
        typed_io::read_bits(gpu, &self.layout, &targets, t)
    }

    /// The CPU backend's twin of the typed uploads: f32 tensors as given; a 16-bit
    /// tensor's gradient, or its parameters without master weights, as the widened 16-bit
    /// rounding of `data` (the values the device would hold); with master weights its
    /// master as given and its copy rounded.
    pub(super) fn host_write(&mut self, t: Option<usize>, data: &[f32], params: bool) {
        let (Arena::Cpu(p), Arena::Cpu(g)) = (&mut self.params, &mut self.grads) else {
            unreachable!("a set without a device holds host arenas")
        };
        let model = &mut self.host_model;
        let mut at = 0usize;
        for tt in typed_io::covered(&self.layout, t) {
            let info = &self.layout.tensors[tt];
            let range = info.offset as usize..(info.offset + info.numel) as usize;
            let part = &data[at..at + info.numel as usize];
            at += info.numel as usize;
            let half = info.dtype.is_16_bit();
            if params && half && !model.is_empty() {
                p[range.clone()].copy_from_slice(part);
            }
            // Where the values go, and whether they are the 16-bit rounding of `data`.
            let target = match (params, half, model.is_empty()) {
                (true, true, false) => &mut model[range],
                (true, _, _) => &mut p[range],
                (false, _, _) => &mut g[range],
            };
            target.copy_from_slice(part);
            if half {
                host::round16(target, info.dtype, None, info.offset);
            }
        }
    }

    /// The covered tensors of host arena `values` (in the virtual space), concatenated.
    pub(super) fn host_read(&self, t: Option<usize>, values: &[f32]) -> Vec<f32> {
        typed_io::covered(&self.layout, t)
            .into_iter()
            .flat_map(|tt| {
                let info = &self.layout.tensors[tt];
                values[info.offset as usize..(info.offset + info.numel) as usize]
                    .iter()
                    .copied()
            })
            .collect()
    }

    /// The element type of each element of the covered tensors, in order.
    pub(super) fn covered_dtypes(&self, t: Option<usize>) -> impl Iterator<Item = Dtype> + '_ {
        typed_io::covered(&self.layout, t)
            .into_iter()
            .flat_map(|tt| {
                let info = &self.layout.tensors[tt];
                std::iter::repeat_n(info.dtype, info.numel as usize)
            })
    }

    // --- device views -----------------------------------------------------------------
}
