//! The one error type of the crate.

/// Everything that can go wrong in clipstep. Every message says what was expected,
/// what was received, and what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter was found and `CLIPSTEP_REQUIRE_GPU=1` forbids the CPU fallback,
    /// or `WGPU_ADAPTER_NAME` names no adapter.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("could not create a device on adapter {adapter}: {reason}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },
    /// The device was lost or reported an internal error; no result can be trusted.
    #[error("GPU device error: {0}; recreate the Context")]
    Device(String),
    /// wgpu rejected the call (validation): typically a caller's buffer that was destroyed,
    /// belongs to another device, or lacks a usage. The call changed nothing and the
    /// Context is still usable.
    #[error("wgpu rejected the call, which changed nothing (the Context is still usable): {0}")]
    Rejected(String),
    /// An allocation failed. The call changed nothing and the Context is still usable.
    #[error("out of memory: {0}; nothing was changed (the Context is still usable): use a smaller set, or free buffers")]
    OutOfMemory(String),
    /// The device's limits cannot run clipstep's kernels.
    #[error("the device's {limit} is {have}; clipstep's kernels need at least {need}")]
    DeviceLimits {
        /// The wgpu limit.
        limit: &'static str,
        /// What the kernels need.
        need: u64,
        /// What the device has.
        have: u64,
    },
    /// A parameter set needs at least one tensor.
    #[error("a parameter set needs at least one tensor; got none")]
    EmptyParamSet,
    /// Two tensors share a name.
    #[error("tensor name {0:?} is used twice; names in a parameter set must be unique")]
    DuplicateTensorName(String),
    /// A tensor name was not found in the parameter set.
    #[error("no tensor named {0:?} in this parameter set")]
    UnknownTensor(String),
    /// An optimizer state name this optimizer does not keep.
    #[error("this optimizer keeps no state named {name:?}; its states are {available:?}")]
    UnknownState {
        /// The name asked for.
        name: String,
        /// The states it keeps.
        available: Vec<&'static str>,
    },
    /// A host slice or buffer had the wrong number of elements.
    #[error("{what}: expected {expected} elements, got {got}")]
    LengthMismatch {
        /// What was being passed.
        what: String,
        /// Elements expected.
        expected: u64,
        /// Elements received.
        got: u64,
    },
    /// `max_norm` must be finite and > 0.
    #[error("max_norm must be a finite number > 0; got {0}")]
    InvalidMaxNorm(f32),
    /// The norm order p must be finite and > 0 (use `Norm::Inf` for the max norm).
    #[error("norm order p must be finite and > 0 (use Norm::Inf for the max norm); got {0}")]
    InvalidNormOrder(f32),
    /// The clip value must be finite and > 0.
    #[error("clip_value must be a finite number > 0; got {0}")]
    InvalidClipValue(f32),
    /// A total norm given to `clip_grads_with_norm` must not be negative.
    #[error("total_norm must be >= 0 (NaN or +Inf count as non-finite gradients); got {0}")]
    InvalidTotalNorm(f32),
    /// Words that are not a [`crate::shard::ShardPartial`], or partials that cannot be combined.
    #[error("invalid shard partial: {0}")]
    InvalidShardPartial(String),
    /// The gradient scale must be finite and > 0, with a finite reciprocal.
    #[error("grad_scale must be a finite number > 0 whose reciprocal is finite (at least 2^-126); got {0}")]
    InvalidGradScale(f32),
    /// An optimizer hyperparameter broke PyTorch's validation rule.
    #[error("{optimizer}: invalid {name}: {value} ({rule})")]
    InvalidHyperparameter {
        /// Optimizer name.
        optimizer: &'static str,
        /// Parameter name, as PyTorch spells it.
        name: &'static str,
        /// The value received.
        value: f64,
        /// The rule it broke.
        rule: &'static str,
    },
    /// Parameter groups that do not partition the set's tensors, or disagree on the states
    /// they keep.
    #[error("invalid parameter groups: {0}")]
    InvalidGroups(String),
    /// An external buffer lacks a usage flag the operation needs.
    #[error("external buffer for tensor {tensor:?} ({role}) lacks BufferUsages::{usage}; create it with that usage")]
    MissingUsage {
        /// Tensor name.
        tensor: String,
        /// "params" or "grads".
        role: &'static str,
        /// The missing flag.
        usage: &'static str,
    },
    /// An external buffer offset is not aligned as the device requires.
    #[error("external buffer offset {offset} for tensor {tensor:?} is not a multiple of the device's min_storage_buffer_offset_alignment ({alignment})")]
    MisalignedOffset {
        /// Tensor name.
        tensor: String,
        /// Offset in bytes.
        offset: u64,
        /// Required alignment in bytes.
        alignment: u32,
    },
    /// An external range runs past the end of its buffer.
    #[error("external range for tensor {tensor:?} needs bytes {offset}..{end} but the buffer holds {size} (ranges are bound in whole vec4s: round the length up to a multiple of 4 elements)")]
    OutOfBounds {
        /// Tensor name.
        tensor: String,
        /// Start in bytes.
        offset: u64,
        /// End in bytes.
        end: u64,
        /// Buffer size in bytes.
        size: u64,
    },
    /// [`ParamSet::rebind_grads`](crate::ParamSet::rebind_grads) named a tensor of
    /// clipstep's own: only external tensors' gradients live in a caller's buffers.
    #[error("tensor {0:?} is not external: its gradients live in clipstep's own slabs; only tensors given in ArenaOptions::external can be rebound")]
    NotExternal(String),
    /// A rebind would split a pool: the tensors sharing a params buffer and a grads buffer
    /// are one slab, and their gradients must stay in one buffer within one binding.
    #[error("this rebind would split a pool: {0}")]
    SplitPool(String),
    /// Two external ranges overlap: one update would write memory twice, or one tensor's
    /// upload would rewrite another's data.
    #[error("external ranges overlap: {first} bytes {}..{} and {second} bytes {}..{} of the same buffer; give every params and grads range its own bytes", first_range.0, first_range.1, second_range.0, second_range.1)]
    OverlappingExternal {
        /// The first range's tensor and role.
        first: String,
        /// The second range's tensor and role.
        second: String,
        /// The first range, in bytes.
        first_range: (u64, u64),
        /// The second range, in bytes.
        second_range: (u64, u64),
    },
    /// An external buffer cannot be bound on this Context's device: destroyed, or created
    /// on another device.
    #[error("external buffer for tensor {tensor:?} ({role}) cannot be bound on this Context's device: {reason}; pass a live buffer created on this Context's device (Context::device_queue)")]
    UnusableBuffer {
        /// Tensor name.
        tensor: String,
        /// "params" or "grads".
        role: &'static str,
        /// wgpu's reason.
        reason: String,
    },
    /// A size exceeds a device limit or the u32 index space.
    #[error("{what} is {size}, over the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A tensor's shape is outside what an operation defines.
    #[error("tensor {tensor:?} of shape {shape:?}: {why}")]
    InvalidShape {
        /// Tensor name.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
        /// What the operation accepts.
        why: &'static str,
    },
    /// A matrix batch ([`crate::linalg`]) was given a product, a matrix or an index it
    /// cannot run; the message says which and why.
    #[error("invalid matrix batch input: {0}")]
    InvalidMatrices(String),
    /// A combination clipstep does not run yet.
    #[error("not supported yet: {0}")]
    NotSupported(String),
    /// A loss scaler's settings (or a scale set by hand) are out of range, or the step's
    /// options conflict with a scaler.
    #[error("invalid loss scaler: {0}")]
    InvalidLossScaler(String),
    /// The operation needs another element type than the set's (see [`crate::Dtype`]).
    #[error("{what} needs a set of {needs} elements; this set holds {set:?}")]
    WrongDtype {
        /// The operation.
        what: &'static str,
        /// What it needs.
        needs: &'static str,
        /// The set's element type.
        set: crate::Dtype,
    },
    /// A block-RMS clip threshold must be finite and > 0.
    #[error("clip_by_block_rms threshold must be finite and > 0; got {0}")]
    InvalidBlockRms(f32),
    /// `StepOptions::skip_above` must be finite and > 0.
    #[error("skip_above must be a finite bound > 0 on the global norm; got {0} (None: never skip for size)")]
    InvalidSkipBound(f32),
    /// A forced slab size is too small.
    #[error("slab size {0} bytes is below the minimum of {min} bytes", min = crate::consts::MIN_SLAB_BYTES)]
    SlabTooSmall(u64),
    /// The operation needs a GPU and this Context runs on the CPU fallback.
    #[error("{0} needs a GPU device; this Context runs on the CPU reference fallback")]
    NeedsGpu(&'static str),
    /// An optimizer or workspace was used with a parameter set it was not built for.
    #[error("this optimizer was built for another parameter set (id {expected}); got id {got}")]
    ParamSetMismatch {
        /// The set it was built for.
        expected: u64,
        /// The set passed in.
        got: u64,
    },
    /// A report was read after a newer operation reused its device buffer.
    #[error("this report is stale: a later operation on the same set overwrote its values; read a report before encoding the next operation")]
    StaleReport,
    /// A report of an `encode_*` operation was read before the encoder it was recorded into
    /// was submitted: its values would be the previous operation's.
    #[error("this report's operation was recorded into an encoder that has not been submitted yet (its values would be the previous operation's): submit the encoder (queue.submit) before reading the report")]
    UnsubmittedReport,
    /// An upload (named) to a set with an operation recorded into a caller's
    /// encoder that has not been submitted: the transfer would land before it. (An
    /// encoder dropped unsubmitted is superseded by the next operation submitted by the
    /// same set or optimizer.)
    #[error("{0} while an operation recorded on this set into a caller's encoder has not been submitted: the upload would land before it (a queue write runs before every later submission); submit the encoder first")]
    UnsubmittedRecording(&'static str),
    /// The gradients held NaN or ±Inf and the non-finite policy is `Error`.
    #[error(
        "non-finite gradients (total norm {total_norm}); the step was skipped and nothing changed"
    )]
    NonFiniteGradients {
        /// The total norm (NaN or Inf).
        total_norm: f32,
    },
    /// Mapping a readback buffer failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
    /// A checkpoint could not be read.
    #[error("invalid checkpoint: {0}")]
    Checkpoint(String),
    /// An I/O error while saving or loading a checkpoint.
    #[error("checkpoint I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
