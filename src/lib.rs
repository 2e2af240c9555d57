//! # clipstep
//!
//! GPU kernels for the last mile of a training step — the gradient norm, gradient
//! clipping and fused optimizer updates — as WGSL compute shaders run through `wgpu`
//! (Vulkan, Metal, DX12, GL), with a CPU reference in plain Rust that every GPU result
//! is tested against.
//!
//! ```no_run
//! use clipstep::{Context, Nonfinite, Norm, TensorSpec};
//! # fn main() -> clipstep::Result<()> {
//! let ctx = Context::new()?; // best adapter; WGPU_BACKEND / WGPU_ADAPTER_NAME respected
//! let mut params = ctx.param_set(&[TensorSpec::new("w", [256, 128]), TensorSpec::new("b", [256])])?;
//! params.upload_grads(&vec![0.5; 256 * 128 + 256])?;
//! let report = params.clip_grad_norm(1.0, Norm::L2, Nonfinite::Propagate)?; // in place, no host sync
//! let total = report.read_blocking()?.total_norm;                            // the only host sync
//! # let _ = total; Ok(()) }
//! ```
//!
//! Tensors are packed into a few large buffers (slabs) described by chunk tables, so a
//! step over thousands of tensors costs a handful of dispatches in one command buffer;
//! reductions use a fixed grid and a fixed order, so results are bit-identical from run
//! to run on one device.
//!
//! A step, top to bottom: [`Optimizer::step`] (`src/optim/engine/`) builds the step's
//! options, records the norm passes and the finalize (`src/kernels/norm.rs`) and the
//! update (`src/kernels/update.rs`), each a dispatch per slab of a cached pipeline
//! (`src/device/gpu.rs`, `src/device/context.rs`) running `shaders/<kernel>.wgsl`.

#![warn(missing_docs)]

mod checkpoint;
pub mod consts;
mod device;
mod dtype;
mod error;
mod kernels;
pub mod linalg;
#[cfg(feature = "mpi")]
pub mod mpi;
mod optim;
mod options;
pub mod reference;
mod report;
pub mod shard;
mod storage;

pub use checkpoint::{
    CheckpointSummary, LoadOptions, MissingTensors, UnexpectedTensors, CHECKPOINT_VERSION,
};
pub use device::context::{adapters, AdapterSummary, Context, ContextOptions, REQUIRE_GPU_ENV};
pub use dtype::{Dtype, Rounding};
pub use error::{Error, Result};
pub use optim::loss_scale::LossScaler;
pub use optim::rules::*;
pub use optim::{
    CheckpointIo, GroupRates, LossScaling, Optimizer, ParamGroup, RuleConfig, RuleDeclaration,
    RuleVisitor, States, StepOptions,
};
pub use options::{Clip, Nonfinite, Norm};
pub use reference::{Gemm, NewtonSchulz, TensorStep, Units};
pub use report::{Report, StepState};
pub use storage::arena::{ArenaOptions, BufferRange, ExternalTensor, TensorView};
pub use storage::layout::{TensorInfo, TensorSpec, MAX_SET_ELEMENTS};
pub use storage::param_set::ParamSet;
