//! The storage layer: where tensors live. Layouts of slabs and chunk tables (`layout`, pure
//! bookkeeping), arenas and external buffers (`arena`), caller pools and their place tables
//! (`pool`), 8-bit optimizer states' geometry (`quantized`), each slab's bindings as the kernels see them (`slabs`), typed 16-bit transfers
//! (`typed_io`), and `ParamSet`, every public method of a parameter set (`param_set`).

pub(crate) mod arena;
pub(crate) mod factored;
pub(crate) mod layout;
pub(crate) mod ortho;
pub(crate) mod param_set;
pub(crate) mod pool;
pub(crate) mod quantized;
pub(crate) mod slabs;
pub(crate) mod typed_io;
