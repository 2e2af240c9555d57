//! The adapter's error type: clipstep's errors, and what can go wrong between burn and clipstep.

/// What can go wrong in a step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// clipstep rejected the step (its message says what to fix).
    #[error(transparent)]
    Clipstep(#[from] clipstep::Error),
    /// A tensor is not a plain f32 wgpu tensor of burn's cubecl backend (another backend,
    /// fusion enabled, another dtype, a quantized tensor).
    #[error("parameter {name:?}: {reason}; clipstep-burn needs f32 tensors of burn's wgpu backend without fusion")]
    Unsupported {
        /// The parameter's path in the module.
        name: String,
        /// What was found.
        reason: String,
    },
    /// cubecl could not hand out a tensor's buffer.
    #[error("parameter {name:?}: cubecl could not resolve its buffer: {reason}")]
    Resource {
        /// The parameter's path in the module.
        name: String,
        /// cubecl's reason.
        reason: String,
    },
    /// The clipstep Context is not on the device burn's tensors live on.
    #[error("the clipstep Context has no GPU device; build it with clipstep_burn::shared_device")]
    NoDevice,
}

/// `Result<T, clipstep_burn::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
