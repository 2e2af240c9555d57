//! clipstep inside burn: global-norm clipping and clipstep's fused optimizer steps for a
//! burn model on burn's wgpu backend (burn 0.22, wgpu 30), in place of burn's
//! `ModuleOptimizer`.
//!
//! ```rust,ignore
//! let (ctx, device) = clipstep_burn::shared_device()?;        // one wgpu device for both
//! let mut model = MyModel::new(&device);
//! let mut optim = BurnOptimizer::adamw(&ctx, AdamWConfig::default())
//!     .with_options(StepOptions { clip: Clip::GlobalNorm { max_norm: 1.0, norm: Norm::L2 }, ..Default::default() });
//! for batch in data {
//!     let loss = model.forward(batch);
//!     let grads = GradientsParams::from_grads(loss.backward(), &model);
//!     model = optim.step(lr, model, grads)?;                 // was: burn_optim.step(lr, model, grads)
//! }
//! ```
//!
//! How a step runs:
//! - [`shared_device`] creates burn's wgpu device through cubecl's `init_setup` and builds the
//!   clipstep [`Context`](clipstep::Context) on the same `wgpu::Device` and queue, so burn's
//!   commands and clipstep's are ordered on one queue.
//! - Each parameter tensor resolves to its wgpu buffer and byte offset inside burn's memory
//!   pool (`client.get_resource`, which also flushes burn's queued work for that buffer); the
//!   parameters are clipstep [external tensors](clipstep::ExternalTensor) updated **in
//!   place** in burn's buffers. A parameter whose handle is shared (a clone of the module
//!   is alive) is first copied to a fresh tensor, so the clone keeps its values.
//! - Gradients, which burn puts somewhere new every backward pass, are read where they are
//!   (clipstep's `rebind_grads`, no copy) when each clipstep pool's gradients sit in one of
//!   burn's buffers on the storage alignment; otherwise they are copied on the device
//!   (`copy_buffer_to_buffer`, in the step's command buffer) into one gradient buffer owned by
//!   the optimizer: never a host copy ([`BurnOptimizer::gradients_in_place`] says which).
//! - The step is clipstep's: norm → clip → fused update, O(pages) dispatches, one submit,
//!   no readback unless the report is read.
//! - f16 and bf16 parameters are tensors of clipstep's own set with f32 master weights: burn's
//!   16-bit gradients are copied in, the master weights updated, and their rounding copied
//!   into the model's parameters, in the same command buffer.
//!
//! In burn's `Learner`, whose hook is `TrainStep::optimize`, the model carries a
//! [`SharedOptimizer`] (`#[module(skip)]`) and steps with it (`examples/burn_learner.rs`).
//!
//! When the parameters only move (a clone of the model alive at the step, a loaded record),
//! the clipstep parameter set is rebound to their new places; when they change (the first
//! step, another model, a parameter gaining or losing its gradient) it is rebuilt and the
//! optimizer state carried over through a clipstep checkpoint.

mod built;
mod checkpoint;
mod collect;
mod device;
mod error;
mod from_burn;
mod optimizer;
mod resolve;
mod shared;

pub use device::shared_device;
pub use error::{Error, Result};
pub use optimizer::BurnOptimizer;
pub use shared::SharedOptimizer;
