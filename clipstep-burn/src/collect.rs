//! [`Collect`]: one pass over a burn module that finds, per float parameter with a gradient,
//! its buffer, its gradient's buffer, its element type, burn's learning rate for it and its
//! burn group.

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{ModuleMapper, Param, ParamGroup, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor, TensorCreationOptions};
use clipstep::{BufferRange, Context, Dtype};

use crate::built::WordCopy;
use crate::device::check_shared;
use crate::error::{Error, Result};
use crate::resolve::buffer_of;

/// One parameter of this step: its placement and its gradient (kept alive until submitted).
pub(crate) struct Visited {
    pub name: String,
    pub shape: Vec<usize>,
    pub params: BufferRange,
    pub grad: BufferRange,
    /// The element type of the parameter and its gradient (f32, f16 or bf16).
    pub dtype: Dtype,
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
    /// Those copies, to be submitted before anything reads the fresh tensors
    /// ([`Collect::submit_copies`]), and the tensors they copy, kept alive until then.
    pub copies: Vec<WordCopy>,
    pub originals: Vec<Box<dyn std::any::Any>>,
    /// Where a copy within one of burn's buffers goes on its way (the optimizer's, kept).
    pub scratch: &'a mut Option<wgpu::Buffer>,
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
            match self.fresh_copy(&name, &tensor) {
                Ok(fresh) => fresh,
                Err(e) => {
                    self.error = Some(e);
                    return Param::from_mapped_value(id, tensor, mapper);
                }
            }
        };
        let resolved = float_buffer_of(self.ctx, &name, &tensor.clone().inner()).and_then(
            |(params, dtype)| match float_buffer_of(self.ctx, &name, &grad)? {
                (grad, grad_dtype) if grad_dtype == dtype => Ok((params, grad, dtype)),
                (_, grad_dtype) => Err(Error::Unsupported {
                    name: name.clone(),
                    reason: format!("its gradient is {grad_dtype:?} and the parameter {dtype:?}"),
                }),
            },
        );
        let path = self.path.join(".");
        match resolved {
            Ok((params, grad_range, dtype)) => self.visited.push(Visited {
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
                dtype,
                _grad_tensor: Box::new(grad),
            }),
            Err(e) => self.error = Some(e),
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

impl Collect<'_> {
    /// A fresh tensor holding a shared parameter's values. f32 and f16: burn's own copy
    /// (`x · 1`, one fused kernel). bf16: burn's `empty` tensor of its shape, filled by a
    /// device copy that [`Collect::submit_copies`] submits (no kernel runs: a device whose
    /// shaders have no bf16, lavapipe's, has none to run). An error when it cannot be
    /// resolved (then nothing is copied).
    fn fresh_copy<const D: usize>(&mut self, name: &str, tensor: &Tensor<D>) -> Result<Tensor<D>> {
        let grad_required = tensor.is_require_grad();
        let with_grad = |fresh: Tensor<D>| match grad_required {
            true => fresh.require_grad(),
            false => fresh,
        };
        if tensor.dtype() != DType::BF16 {
            self.copied += 1;
            let copy = tensor.clone().inner().mul_scalar(1.0);
            return Ok(with_grad(Tensor::from_inner(copy)));
        }
        let (from, dtype, device) = buffer_of(name, &tensor.clone().inner())?;
        check_shared(self.ctx, name, &device)?;
        let options = TensorCreationOptions::new(tensor.device()).with_dtype(dtype);
        let fresh = Tensor::<D>::empty(tensor.shape(), options);
        let (to, _, _) = buffer_of(name, &fresh.clone().inner())?;
        let bytes = dtype.size() as u64 * tensor.shape().num_elements() as u64;
        let copy = WordCopy::checked(&from, &to, bytes).ok_or_else(|| Error::Unsupported {
            name: name.to_string(),
            reason: format!(
                "its elements at byte {} of burn's buffer cannot be copied in whole 32-bit words",
                from.offset
            ),
        })?;
        self.copied += 1;
        self.copies.push(copy);
        self.originals.push(Box::new(tensor.clone()));
        Ok(with_grad(fresh))
    }

    /// Submits the copies into fresh tensors (one command buffer on the shared queue, ahead
    /// of anything that reads them), then lets the shared tensors go.
    pub fn submit_copies(&mut self) {
        if self.copies.is_empty() {
            return;
        }
        if let Some((device, queue)) = self.ctx.device_queue() {
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("clipstep-burn shared parameters"),
            });
            WordCopy::encode_all(&self.copies, device, &mut encoder, self.scratch);
            queue.submit([encoder.finish()]);
        }
        self.copies.clear();
        self.originals.clear();
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

/// [`buffer_of`] for an f32, f16 or bf16 tensor on the device [`crate::shared_device`] set
/// up, and its element type; another dtype is [`Error::Unsupported`], another device
/// [`Error::ForeignDevice`].
fn float_buffer_of<const D: usize>(
    ctx: &Context, name: &str, tensor: &Tensor<D>,
) -> Result<(BufferRange, Dtype)> {
    let (range, dtype, device) = buffer_of(name, tensor)?;
    check_shared(ctx, name, &device)?;
    let dtype = match dtype {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::Bf16,
        other => {
            return Err(Error::Unsupported {
                name: name.to_string(),
                reason: format!("dtype {other:?}; clipstep-burn steps f32, f16 and bf16 tensors"),
            })
        }
    };
    Ok((range, dtype))
}
