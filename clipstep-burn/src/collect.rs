//! [`Collect`]: one pass over a burn module that finds, per float parameter with a gradient,
//! its buffer, its gradient's buffer, burn's learning rate for it and its burn group.

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{ModuleMapper, Param, ParamGroup, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor};
use clipstep::{BufferRange, Context};

use crate::device::check_shared;
use crate::error::{Error, Result};
use crate::resolve::buffer_of;

/// One parameter of this step: its placement and its gradient (kept alive until submitted).
pub(crate) struct Visited {
    pub name: String,
    pub shape: Vec<usize>,
    pub params: BufferRange,
    pub grad: BufferRange,
    /// The learning rate burn's schedule gives this parameter.
    pub lr: f64,
    /// The burn group it belongs to: 1 + the last of the declared groups that matches it
    /// (as burn's schedules match), 0 for none.
    pub burn_group: usize,
    pub _grad_tensor: Box<dyn std::any::Any>,
}

/// Visits every float parameter: resolves its buffer and its gradient's, replacing a
/// shared parameter by a fresh copy first.
pub(crate) struct Collect<'a> {
    pub ctx: &'a Context,
    pub grads: &'a mut GradientsParams,
    pub lr: &'a ModuleLearningRate,
    pub burn_groups: &'a [ParamGroup],
    pub path: Vec<String>,
    pub visited: Vec<Visited>,
    /// Parameters copied to a fresh tensor because their handle was shared.
    pub copied: usize,
    pub error: Option<Error>,
}

impl ModuleMapper for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = param_name(&self.path, id);
        // A shared handle (a clone of the module is alive) is not updated in place.
        let tensor = if tensor.can_mut() {
            tensor
        } else {
            self.copied += 1;
            let grad_required = tensor.is_require_grad();
            let fresh = Tensor::from_inner(tensor.inner().mul_scalar(1.0));
            if grad_required {
                fresh.require_grad()
            } else {
                fresh
            }
        };
        let resolved = f32_buffer_of(self.ctx, &name, &tensor.clone().inner())
            .and_then(|params| Ok((params, f32_buffer_of(self.ctx, &name, &grad)?)));
        let path = self.path.join(".");
        match resolved {
            Ok((params, grad_range)) => self.visited.push(Visited {
                lr: self.lr.lr_from_param(id, Some(&path)),
                burn_group: self
                    .burn_groups
                    .iter()
                    .rposition(|g| g.matches(&id, Some(&path)))
                    .map_or(0, |k| k + 1),
                name,
                shape: tensor.shape().dims::<D>().to_vec(),
                params,
                grad: grad_range,
                _grad_tensor: Box::new(grad),
            }),
            Err(e) => self.error = Some(e),
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// A parameter's name: its path in the module (`layer1.weight`), or its id at the root.
pub(crate) fn param_name(path: &[String], id: ParamId) -> String {
    if path.is_empty() {
        format!("param{id}")
    } else {
        path.join(".")
    }
}

/// [`buffer_of`] for an f32 tensor on the device [`crate::shared_device`] set up; another
/// dtype is [`Error::Unsupported`], another device [`Error::ForeignDevice`].
fn f32_buffer_of<const D: usize>(
    ctx: &Context, name: &str, tensor: &Tensor<D>,
) -> Result<BufferRange> {
    let (range, dtype, device) = buffer_of(name, tensor)?;
    check_shared(ctx, name, &device)?;
    if dtype != DType::F32 {
        return Err(Error::Unsupported {
            name: name.to_string(),
            reason: format!("dtype {dtype:?}; clipstep-burn steps f32 tensors"),
        });
    }
    Ok(range)
}
