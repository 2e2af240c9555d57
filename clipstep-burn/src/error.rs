//! The adapter's error type: clipstep's errors, and what can go wrong between burn and clipstep.

/// What can go wrong in a step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// clipstep rejected the step (its message says what to fix).
    #[error(transparent)]
    Clipstep(#[from] clipstep::Error),
    /// A tensor clipstep cannot step: not on burn's wgpu backend, not contiguous, of a dtype
    /// it does not step (the reason says which).
    #[error("parameter {name:?}: {reason}")]
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
    /// The clipstep Context has no GPU device (a CPU Context).
    #[error("the clipstep Context has no GPU device; build it with clipstep_burn::shared_device")]
    NoDevice,
    /// burn set up its default wgpu device before [`crate::shared_device`] could.
    #[error(
        "burn's default wgpu device was set up before clipstep_burn::shared_device (a burn \
         tensor was made on Device::default()): call shared_device() first, before any burn \
         tensor exists, and make the model on the Device it returns (cubecl: {reason})"
    )]
    DeviceTaken {
        /// cubecl's reason.
        reason: String,
    },
    /// A parameter lives on a burn device that [`crate::shared_device`] did not set up, so
    /// clipstep cannot share its queue.
    #[error(
        "parameter {name:?} is on burn device {device}, which clipstep_burn::shared_device did \
         not set up: make the model on the Device shared_device returns"
    )]
    ForeignDevice {
        /// The parameter's path in the module.
        name: String,
        /// The burn device it is on.
        device: String,
    },
    /// The optimizer's Context is not on the wgpu device burn's tensors live on.
    #[error(
        "the clipstep Context is not on burn's device: build the BurnOptimizer with the Context \
         clipstep_burn::shared_device returns"
    )]
    ForeignContext,
    /// burn's learning-rate schedule gives two tensors of one clipstep parameter group
    /// different rates.
    #[error(
        "parameter {name:?}: burn's schedule gives it lr {lr}, but {other:?}, in the same \
         clipstep parameter group, lr {other_lr}: declare burn's scheduler groups with \
         BurnOptimizer::with_burn_groups (or build clipstep groups that follow them)"
    )]
    GroupRate {
        /// The tensor whose rate differs.
        name: String,
        /// Its rate.
        lr: f64,
        /// The group's first tensor.
        other: String,
        /// Its rate.
        other_lr: f64,
    },
    /// A checkpoint that does not fit the model or the optimizer.
    #[error("the checkpoint does not fit: {0}")]
    Checkpoint(String),
    /// A burn optimizer config clipstep cannot reproduce.
    #[error("burn config: {0}")]
    Config(String),
}

/// `Result<T, clipstep_burn::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
