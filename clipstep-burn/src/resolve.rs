//! A burn tensor's wgpu buffer and byte offset, from its cubecl handle, with or without
//! burn's fusion.
//!
//! burn's dispatch keeps a cubecl tensor as `burn::backend::Cube`'s primitive: a plain
//! [`CubeTensor`] when burn's `fusion` feature is off, a [`FusionTensor`] over one when it is
//! on (burn's default). Cargo unifies features across a build, so which one this crate sees is
//! the user's choice, not ours: [`CubeFloat`] is implemented for both, and a fused tensor
//! is resolved to the cubecl tensor behind it (burn-fusion's `resolve_tensor_float`, which
//! first runs the fused work queued on the tensor's stream).

use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{BackendTypes, Cube};
use burn::tensor::{DType, Tensor};
use burn_fusion::{Fusion, FusionBackend, FusionTensor};
use clipstep::BufferRange;
use cubecl::wgpu::{AutoCompiler, WgpuServer};

use crate::error::{Error, Result};

/// burn's cubecl backend, fused or not: its float primitive as the cubecl tensor that holds
/// its elements.
pub(crate) trait CubeFloat: BackendTypes {
    /// The cubecl tensor (its buffer handle, layout and dtype); for a fused tensor, after the
    /// fused work queued on its stream has run. The caller must keep another reference to the
    /// tensor alive: a fused tensor's last reference gives its handle away when resolved.
    fn into_cube_tensor(tensor: Self::FloatTensorPrimitive) -> CubeTensor;
}

impl CubeFloat for CubeBackend {
    fn into_cube_tensor(tensor: CubeTensor) -> CubeTensor {
        tensor
    }
}

impl<B> CubeFloat for Fusion<B>
where
    B: FusionBackend + BackendTypes<FloatTensorPrimitive = CubeTensor>,
{
    fn into_cube_tensor(tensor: FusionTensor<B::FusionRuntime>) -> CubeTensor {
        let client = tensor.client.clone();
        client.resolve_tensor_float::<B>(tensor)
    }
}

/// Where a contiguous, non-autodiff tensor's elements are: the buffer of burn's memory pool
/// that holds it, the byte offset of its first element, its dtype, and burn's device. Resolving flushes
/// burn's queued work on that buffer to the wgpu queue (fusion's stream, then cubecl's
/// `get_resource`), so work recorded by clipstep after this call sees what burn wrote.
pub(crate) fn buffer_of<const D: usize>(
    name: &str, tensor: &Tensor<D>,
) -> Result<(BufferRange, DType, cubecl::Device)>
where
    Cube: CubeFloat,
{
    let unsupported = |reason: String| Error::Unsupported {
        name: name.to_string(),
        reason,
    };
    let primitive = tensor
        .clone()
        .try_into_primitive::<Cube>()
        .map_err(|e| unsupported(format!("not a tensor of burn's wgpu backend ({e:?})")))?;
    let primitive = Cube::into_cube_tensor(primitive);
    if !primitive.is_contiguous() {
        return Err(unsupported("its elements are not contiguous".to_string()));
    }
    let resource = primitive
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(primitive.handle.clone())
        .map_err(|e| Error::Resource {
            name: name.to_string(),
            reason: format!("{e:?}"),
        })?;
    let resource = resource.resource();
    let range = BufferRange {
        buffer: resource.buffer.clone(),
        offset: resource.offset,
    };
    Ok((range, primitive.dtype, primitive.device.clone()))
}
