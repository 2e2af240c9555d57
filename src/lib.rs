//! # clipstep
//!
//! GPU kernels for the last mile of a training step — the gradient norm, gradient
//! clipping and fused optimizer updates — as WGSL compute shaders run through `wgpu`
//! (Vulkan, Metal, DX12, GL), with a CPU reference in plain Rust that every GPU result
//! is tested against.
//!
//! ```no_run
//! use clipstep::{Context, Norm, TensorSpec};
//! # fn main() -> clipstep::Result<()> {
//! let ctx = Context::new()?; // best adapter; WGPU_BACKEND / WGPU_ADAPTER_NAME respected
//! let mut params = ctx.param_set(&[TensorSpec::new("w", [256, 128]), TensorSpec::new("b", [256])])?;
//! params.upload_grads(&vec![0.5; 256 * 128 + 256])?;
//! let report = params.clip_grad_norm(1.0, Norm::L2)?; // scales in place, no host sync
//! let total = report.read_blocking()?.total_norm;        // the only host sync
//! # let _ = total; Ok(()) }
//! ```
//!
//! Tensors are packed into a few large buffers (slabs) described by chunk tables, so a
//! step over thousands of tensors costs a handful of dispatches in one command buffer;
//! reductions use a fixed grid and a fixed order, so results are bit-identical from run
//! to run on one device.

#![warn(missing_docs)]

pub mod arena;
pub mod bench;
pub mod clip;
pub mod consts;
pub mod context;
mod error;
pub mod layout;
pub mod norm;
pub mod optim;
pub mod reference;
pub mod report;
mod shaders;
pub mod verify;

pub use arena::{ArenaOptions, BufferRange, ExternalTensor, ParamSet, TensorView};
pub use clip::{Clip, Nonfinite};
pub use context::{adapters, AdapterSummary, Context, ContextOptions};
pub use error::{Error, Result};
pub use layout::{TensorInfo, TensorSpec};
pub use norm::Norm;
pub use optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
    StepOptions,
};
pub use reference::StepState;
pub use report::{Report, StepReport};
