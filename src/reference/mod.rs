//! The CPU reference: plain Rust mirroring each shader line by line, accumulating norms
//! in f64. It defines correctness (every GPU result is tested against it) and is the
//! backend of a [`crate::Context`] that found no GPU adapter.
//!
//! | shader                                  | reference                          |
//! |-----------------------------------------|------------------------------------|
//! | `norm_partials` + `norm_tensors`        | [`power_sum`]                      |
//! | `norm_finalize`                         | [`finalize`]                       |
//! | `scale` (clip by norm)                  | [`clip_grad_norm`]                 |
//! | `clamp` (clip by value)                 | [`clip_grad_value`]                |
//! | `sgd`, `adam`, `rmsprop`                | [`sgd_update`], [`adam_update`], [`rmsprop_update`] |

mod clip;
mod norm;
mod optim;

mod step_state;

pub use clip::{
    clamp_keep_nan, clip_grad_norm, clip_grad_norm_per_tensor, clip_grad_value, effective_grad,
    GradTransform,
};
pub use norm::{global_norm, per_tensor_norms, power_sum, root, PowerSum};
pub use optim::{adam_update, rmsprop_update, sgd_update, torch_lerp};

pub use step_state::{clip_coef, finalize, FinalizeInput, StepState};
