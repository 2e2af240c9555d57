//! A burn tensor's wgpu buffer and byte offset, from its cubecl handle.

use burn::backend::Wgpu;
use burn::tensor::{DType, Tensor};
use clipstep::BufferRange;
use cubecl::wgpu::{AutoCompiler, WgpuServer};

use crate::error::{Error, Result};

/// Where an f32, contiguous, non-autodiff tensor's elements are: the buffer of burn's memory
/// pool that holds it and the byte offset of its first element. Resolving flushes burn's
/// queued work on that buffer to the wgpu queue (cubecl's `get_resource`), so work recorded
/// by clipstep after this call sees what burn wrote.
pub(crate) fn buffer_of<const D: usize>(name: &str, tensor: &Tensor<D>) -> Result<BufferRange> {
    let unsupported = |reason: String| Error::Unsupported {
        name: name.to_string(),
        reason,
    };
    let primitive = tensor
        .clone()
        .try_into_primitive::<Wgpu>()
        .map_err(|e| unsupported(format!("not a cubecl tensor ({e:?})")))?;
    if primitive.dtype != DType::F32 {
        return Err(unsupported(format!("dtype {:?}", primitive.dtype)));
    }
    if !primitive.is_contiguous() {
        return Err(unsupported("not contiguous".to_string()));
    }
    let resource = primitive
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(primitive.handle.clone())
        .map_err(|e| Error::Resource {
            name: name.to_string(),
            reason: format!("{e:?}"),
        })?;
    let resource = resource.resource();
    Ok(BufferRange {
        buffer: resource.buffer.clone(),
        offset: resource.offset,
    })
}
