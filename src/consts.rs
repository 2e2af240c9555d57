//! Every tuning constant and tolerance of the crate, in one place.
//!
//! Shaders receive the kernel constants through a generated prelude (see `src/kernels/shaders.rs`),
//! so a value changed here changes the WGSL too. Only the tolerances (the numerics
//! contract) and the clip `eps` are public; the rest is the shaders' business.

/// Invocations per workgroup for every kernel. 256 is a multiple of every vendor's
/// SIMD width (32 on NVIDIA, 64 on AMD, 8/16 on CPU emulation) and the largest size
/// WebGPU guarantees.
pub(crate) const WORKGROUP_SIZE: u32 = 256;

/// Elements per invocation per load: kernels read `vec4<f32>` (16-byte loads).
pub(crate) const VEC_WIDTH: u32 = 4;

/// `vec4`s each invocation of an elementwise kernel (scale, clamp, updates) handles.
pub(crate) const VEC4_PER_INVOCATION: u32 = 4;

/// Elements in one chunk of the norm-partials pass: one workgroup reduces one chunk,
/// 16 `vec4` loads per invocation. 16384 elements = 64 KiB of gradient per workgroup.
pub(crate) const CHUNK_ELEMS: u32 = WORKGROUP_SIZE * VEC_WIDTH * 16;

/// Size classes of norm chunks: `(largest chunk in elements, invocations per chunk)`,
/// smallest first. A workgroup reduces `WORKGROUP_SIZE / lanes` chunks of a class at once,
/// so thousands of small tensors cost a few workgroups rather than one each, and no
/// invocation makes more than 64 loads. Only whole chunks (`CHUNK_ELEMS`) get a workgroup
/// each: a tensor of 8K–16K elements is one short chunk, and given a whole workgroup it cost
/// as much as a whole chunk (lavapipe: a 16M set of 2,000 such tensors took 1.84× the norm
/// of one tensor; 1.11× with 64 invocations apiece).
pub(crate) const CHUNK_CLASSES: [(u32, u32); 2] = [(2048, 8), (CHUNK_ELEMS - 1, 64)];

/// Tensors with at most this many chunks are folded by one invocation each in the
/// per-tensor pass; larger ones get a workgroup.
pub(crate) const SERIAL_FOLD_CHUNKS: u32 = 4;

/// A set whose per-tensor fold is at most this many workgroups (up to 2,048 small tensors,
/// or a few big ones) folds and finalizes in one workgroup, one dispatch
/// (`shaders/norm_fold_finalize.wgsl`): its turns cost less than a dispatch and the barrier
/// before it. Larger sets fold in a dispatch of their own.
pub(crate) const FUSED_FOLD_GROUPS: u32 = 8;

/// Every tensor starts at a multiple of this many elements inside its slab: 64 f32 =
/// 256 bytes, WebGPU's default `min_storage_buffer_offset_alignment`, so any tensor view
/// can be bound directly by a caller's shader, and every chunk starts on a `vec4`.
pub(crate) const TENSOR_ALIGN_ELEMS: u64 = 64;

/// Parameter groups one optimizer may have: the update kernels hold the group table in a
/// uniform array of this many rows (at most 48 bytes each: 12 KiB).
pub(crate) const MAX_GROUPS: u32 = 256;

/// The smallest slab a caller may force (bytes): one aligned tensor block.
pub(crate) const MIN_SLAB_BYTES: u64 = TENSOR_ALIGN_ELEMS * 4;

/// `eps` in the clip coefficient `min(1, max_norm / (total_norm + eps))`, as PyTorch.
pub const CLIP_EPS: f32 = 1e-6;

/// Tolerances of the GPU against the CPU reference, and of the reference against PyTorch
/// (DESIGN.md, "Numerics contract"). Tests and `clipstep verify` use these and no others.
pub mod tolerance {
    /// Relative error of the global L1/L2/L∞ norm against the f64 reference.
    pub const NORM_REL: f64 = 2e-6;
    /// Relative error for a general p-norm: `pow` on GPUs is only accurate to a few
    /// ulp and `(Σ|g|^p)^(1/p)` amplifies the error of `log2` by the magnitude of its argument.
    pub const P_NORM_REL: f64 = 2e-5;
    /// A gradient scaled by a clip coefficient: the coefficient carries the norm's
    /// relative error into every element, and the multiply adds its own rounding.
    pub const CLIPPED_REL: f64 = 2.0 * NORM_REL;
    /// Adam's bias corrections `1 − β^t`, computed on the device as `−expm1(t·ln β)` in f32.
    pub const BIAS_CORRECTION_REL: f64 = 1e-6;
    /// One fused update: each element within this many ulp of the f32 reference formula...
    pub const UPDATE_ULPS: u32 = 4;
    /// ...or within this absolute difference.
    pub const UPDATE_ABS: f32 = 1e-7;
    /// One reference step against PyTorch's (golden fixtures, values of order 1), besides
    /// `UPDATE_ULPS`: ATen's vectorized CPU kernels fuse multiply-adds (`add(x, alpha=a)`,
    /// `lerp`, `addcmul`) and its `sqrt` is not always correctly rounded; clipstep fuses
    /// nothing (its shaders round each product on its own, `exact` in
    /// `shaders/update.wgsl`), so where a momentum sum nearly cancels
    /// the two differ by up to ~2.3e-7 absolute (61 ulp of a 0.04 result).
    pub const PYTORCH_STEP_ABS: f32 = 1e-6;
    /// Multi-step trajectories: parameters within this relative difference of the reference...
    pub const TRAJECTORY_REL: f32 = 1e-5;
    /// ...or this, for a trust-ratio rule (LARS, LAMB): each of its updates is scaled by a
    /// ratio of two norms, carrying their relative error (2·`NORM_REL`) into every element
    /// every step, where other rules' updates carry a few ulp.
    pub const TRUST_TRAJECTORY_REL: f32 = 5e-5;
    /// ...relative to `max(|p|, TRAJECTORY_FLOOR)`: parameters near zero compare absolutely.
    pub const TRAJECTORY_FLOOR: f64 = 1e-2;
    /// A training loss computed from GPU-trained parameters against the same loop on the
    /// CPU backend (or a framework's own optimizer: clipstep-burn against burn's AdamW): the
    /// trajectory's difference, carried through the model's forward pass. Parameters a
    /// training run moved compare the same way, relative to how far they moved.
    pub const TRAINING_LOSS_REL: f32 = 1e-4;
    /// A training run in bf16 (parameters and gradients, f32 master weights, a dynamic loss
    /// scale) against the same run in f32, loss by loss: bf16's 8-bit mantissa, carried
    /// through the forward pass, over tens of steps (`examples/train_mixed.rs`).
    pub const BF16_TRAINING_LOSS_REL: f32 = 0.1;
    /// The same in f16, whose run also lags by the steps it skips while its loss scale
    /// overflows and backs off.
    pub const F16_TRAINING_LOSS_REL: f32 = 0.3;
    /// A loss or a single step compared relative to `max(|x|, STEP_FLOOR)`: values near zero
    /// compare absolutely (tighter than `TRAJECTORY_FLOOR`, which covers 100 steps).
    pub const STEP_FLOOR: f64 = 1e-3;
    /// A norm of a few dozen elements (one workgroup's fixed tree in f32) against the f64
    /// reference: tighter than `NORM_REL`, which covers sets of up to 2^26 elements.
    pub const SMALL_NORM_REL: f64 = 1e-6;
    /// A norm computed along two paths, of any kind up to p = 3: a sharded norm's combined
    /// partials against one process's pass and the reference, the unscaled norm of a
    /// loss-scaled step, 16-bit gradients' norm against their widened values' (each path
    /// within `NORM_REL` or, for p = 3, its own `pow`'s few ulp).
    pub const CROSS_PATH_NORM_REL: f64 = 1e-5;
    /// The mean of many stochastically rounded bf16 values against its expectation: a
    /// statistical bound (eight steps of an eighth of an ulp over 20,000 values: a standard
    /// error below 1e-4, so this is about 2.5 of them; the seed is fixed, so the test is
    /// deterministic).
    pub const STOCHASTIC_MEAN_ABS: f64 = 2e-4;
    /// The length of a LARS step against `lr · trust_coefficient · ‖p‖` (its definition,
    /// exact but for eps in the trust ratio's denominator and f32 rounding).
    pub const TRUST_STEP_REL: f64 = 1e-3;
}
