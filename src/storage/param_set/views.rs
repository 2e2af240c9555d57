//! A parameter set's device views: where each tensor's gradients and parameters are, for a
//! caller's own kernels.

use super::ParamSet;
use crate::error::{Error, Result};
use crate::storage::arena::{Arena, TensorView};
use crate::storage::typed_io::{self, Target};

impl ParamSet {
    /// The device pieces of a tensor's gradient (usually one; more when it spans slabs),
    /// so a caller's backward kernels can write gradients in place. A 16-bit tensor's
    /// pieces hold packed 16-bit elements (byte offsets; two elements per word).
    pub fn grad_views(&self, name: &str) -> Result<Vec<TensorView<'_>>> {
        self.views(&self.grads, name)
    }

    /// The device pieces of a tensor's parameters as the model reads them: a 16-bit
    /// tensor's 16-bit parameters (with master weights, their rounded copy).
    pub fn param_views(&self, name: &str) -> Result<Vec<TensorView<'_>>> {
        if !self.has_16_bit() {
            return self.views(&self.params, name);
        }
        let t = self.layout.index(name)?;
        let targets = self.model_targets();
        Ok(self.typed_views(t, &targets))
    }

    pub(super) fn views<'a>(&'a self, arena: &'a Arena, name: &str) -> Result<Vec<TensorView<'a>>> {
        let t = self.layout.index(name)?;
        let Arena::Gpu(bindings) = arena else {
            return Err(Error::NeedsGpu("a device view of a tensor"));
        };
        if self.has_16_bit() {
            return Ok(self.typed_views(t, &self.typed(arena)));
        }
        Ok(self
            .layout
            .pieces(t)
            .into_iter()
            .map(|p| TensorView {
                buffer: &bindings[p.slab].buffer,
                offset: bindings[p.slab].piece_offset(&self.layout, t, &p),
                len: p.len,
                tensor_offset: p.tensor_offset,
            })
            .collect())
    }

    /// Views of tensor `t` in `targets` (byte offsets by each slab's element type).
    pub(super) fn typed_views<'a>(&self, t: usize, targets: &[Target<'a>]) -> Vec<TensorView<'a>> {
        self.layout
            .pieces(t)
            .into_iter()
            .filter_map(|p| {
                let (b, dtype) = targets[p.slab]?;
                Some(TensorView {
                    buffer: &b.buffer,
                    offset: typed_io::offset(b, &self.layout, t, &p, dtype),
                    len: p.len,
                    tensor_offset: p.tensor_offset,
                })
            })
            .collect()
    }

    // --- standalone operations ----------------------------------------------------------
}
