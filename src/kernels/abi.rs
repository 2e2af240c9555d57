//! The interface between Rust and WGSL, with one source for each side of it:
//!
//! - **code tables** (norm kinds, norm sources, non-finite policies, flag bits) are Rust
//!   constants; [`prelude`] declares each of them, with the kernel constants of
//!   [`crate::consts`], at the top of every shader;
//! - **shared structs** are `#[repr(C)]` Rust structs declared with [`shared_struct!`],
//!   which generates their WGSL declarations (the prelude's, and each rule's uniform) and
//!   records each field's name and offset. A test reflects every WGSL struct out of the
//!   shaders with naga and fails if a field's name, order or offset, or the struct's size,
//!   differs from its Rust declaration (see `src/kernels/mod.rs`).

use crate::consts::MAX_GROUPS;
use crate::consts::{
    CHUNK_CLASSES, CHUNK_ELEMS, CLIP_EPS, SERIAL_FOLD_CHUNKS, TENSOR_ALIGN_ELEMS,
    VEC4_PER_INVOCATION, VEC_WIDTH, WORKGROUP_SIZE,
};

/// A shared struct's `(field name, byte offset)` list in declaration order, and its size.
pub(crate) type Layout = (Vec<(&'static str, usize)>, usize);

/// A Rust struct with a WGSL twin of the same fields, offsets and size (checked by the
/// layout tests in `src/kernels/mod.rs` and `src/optim/rules/mod.rs`).
pub(crate) trait Shared: bytemuck::Pod {
    /// The struct's name in WGSL.
    const WGSL: &'static str;
    /// `(field name, byte offset)` in declaration order.
    fn fields() -> Vec<(&'static str, usize)>;
    /// The fields and the struct's size.
    fn layout() -> Layout {
        (Self::fields(), std::mem::size_of::<Self>())
    }
}

/// Declares a `#[repr(C)]` struct shared with WGSL (struct `$wgsl` there), the WGSL
/// declaration generated from it (`wgsl()`: each field's doc as a comment, its type mapped
/// by [`wgsl_type`]), and its `Shared` impl. Fields are `pub` within the crate. The Rust
/// declaration is the one source; the naga layout test is the guard that the generated
/// WGSL has the same offsets and size. A rule's uniform is declared with each field's value
/// (`Name = "Wgsl" for Config, … as c { field: f32 = <expression of c>, … }`), which also
/// gives `From<&Config>` for each config.
macro_rules! shared_struct {
    ($(#[$doc:meta])* $name:ident = $wgsl:literal {
        $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $($(#[$fdoc])* pub $field: $ty),*
        }

        impl $name {
            /// The WGSL declaration of this struct, generated from the Rust one.
            #[allow(dead_code)]
            pub(crate) fn wgsl() -> String {
                let mut out = format!(
                    "// Generated from Rust `{}` (src/kernels/abi.rs shared_struct!).\nstruct {} {{\n",
                    stringify!($name),
                    <Self as $crate::kernels::abi::Shared>::WGSL,
                );
                $(
                    $(out.push_str(&$crate::kernels::abi::wgsl_comment(stringify!($fdoc)));)*
                    out.push_str(&format!(
                        "    {}: {},\n",
                        stringify!($field),
                        $crate::kernels::abi::wgsl_type(stringify!($ty))
                    ));
                )*
                out.push_str("}\n");
                out
            }
        }

        impl $crate::kernels::abi::Shared for $name {
            const WGSL: &'static str = $wgsl;
            fn fields() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($field), std::mem::offset_of!($name, $field))),*]
            }
        }
    };
    // A rule's uniform: each field with the expression that computes it from the config
    // `$c`, which gives `From<&Config>` for each config.
    ($(#[$doc:meta])* $name:ident = $wgsl:literal for $($config:ty),+ as $c:ident $fields:tt) => {
        $crate::kernels::abi::shared_struct!(@struct $(#[$doc])* $name = $wgsl $fields);
        $($crate::kernels::abi::shared_struct!(@from $name, $config, $c, $fields);)+
    };
    (@struct $(#[$doc:meta])* $name:ident = $wgsl:literal {
        $($(#[$fdoc:meta])* $field:ident : $ty:ty = $value:expr),* $(,)?
    }) => {
        $crate::kernels::abi::shared_struct! {
            $(#[$doc])* $name = $wgsl { $($(#[$fdoc])* $field: $ty),* }
        }
    };
    (@from $name:ident, $config:ty, $c:ident, {
        $($(#[$fdoc:meta])* $field:ident : $ty:ty = $value:expr),* $(,)?
    }) => {
        impl From<&$config> for $name {
            fn from($c: &$config) -> Self {
                $name { $($field: $value),* }
            }
        }
    };
}
pub(crate) use shared_struct;

/// The WGSL type of a shared struct's Rust field type: `f32` and `u32` as they are, an
/// array `[T; N]` (N = 2, 3, 4) as `vecN<T>` (the layout test catches a vector whose WGSL
/// alignment differs from the array's).
pub(crate) fn wgsl_type(rust: &str) -> String {
    let rust: String = rust.chars().filter(|c| !c.is_whitespace()).collect();
    match rust.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(array) => {
            let (elem, n) = array.split_once(';').expect("an array type [T; N]");
            format!("vec{n}<{elem}>")
        }
        None => rust,
    }
}

/// A doc attribute's text (`doc = " text"`, as `stringify!` gives it) as a WGSL comment
/// line; other attributes give nothing.
pub(crate) fn wgsl_comment(meta: &str) -> String {
    let Some(text) = meta.strip_prefix("doc =").map(str::trim) else {
        return String::new();
    };
    let text = text.trim_start_matches('"').trim_end_matches('"').trim();
    format!("    // {}\n", text.replace("\\\"", "\""))
}

/// Declares `u32` code constants and [`CODES`], the table the prelude is generated from.
macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        $($(#[$doc])* pub(crate) const $name: u32 = $value;)*
        /// Every code constant as `(name, value)`, declared in WGSL by [`prelude`].
        pub(crate) const CODES: &[(&str, u32)] = &[$((stringify!($name), $name)),*];
    };
}

codes! {
    /// `NormOp::kind`: Σ|g|.
    NORM_L1 = 0;
    /// `NormOp::kind`: sqrt(Σ g²).
    NORM_L2 = 1;
    /// `NormOp::kind`: max |g|.
    NORM_INF = 2;
    /// `NormOp::kind`: (Σ|g|^p)^(1/p).
    NORM_P = 3;
    /// `NormOp::source`: no norm; the total reads as NaN and nothing is flagged.
    SOURCE_NONE = 0;
    /// `NormOp::source`: the norm passes computed the power sums.
    SOURCE_COMPUTED = 1;
    /// `NormOp::source`: the total norm is `NormOp::given_norm` (computed elsewhere).
    SOURCE_GIVEN = 2;
    /// `NormOp::policy`: a non-finite step is skipped.
    POLICY_SKIP = 0;
    /// `NormOp::policy`: a non-finite step is applied anyway.
    POLICY_PROPAGATE = 1;
    /// `NormOp::policy`: skipped, and an error when the report is read.
    POLICY_ERROR = 2;
    /// `NormOp::policy`: NaN gradients count as 0 (norm, clip, update); ±Inf skips.
    POLICY_ZERO_NANS = 3;
    /// `NormOp::per_tensor`: `min(1, max_norm / (‖g_t‖ + eps))`, PyTorch's per-tensor clip.
    PER_TENSOR_NORM = 0;
    /// `NormOp::per_tensor`: `1 / max(1, rms(g_t) / max_norm)`, Optax's `clip_by_block_rms`.
    PER_TENSOR_BLOCK_RMS = 1;
    /// A block-table entry (see `shaders/update.wgsl`): its group is not clipped.
    BLOCK_UNCLIPPED = 0x8000_0000;
    /// A pool's place-table row (`shaders/access/places.wgsl`): the bits of each word that
    /// hold a vec4 offset; the 4 bits above hold half of the block's live count mod 64.
    PLACE_OFFSET_MASK = 0x0fff_ffff;
    /// A block table's first entry: every block of the slab has this entry.
    BLOCK_SLAB_UNIFORM = 0x4000_0000;
    /// A block-table entry: the bits that hold the group index.
    BLOCK_GROUP_MASK = 0x3fff_ffff;
    /// `Partial::flags`: some element was ±Inf.
    FLAG_INF = 1;
    /// `Partial::flags`: some element was NaN.
    FLAG_NAN = 2;
    /// `GroupSchedule::kind`: Adam's bias corrections only (or none, where ln β = 0).
    SCHEDULE_ADAM = 0;
    /// `GroupSchedule::kind`: NAdam's momentum coefficients besides `1 − β2^t`.
    SCHEDULE_NADAM = 1;
    /// `GroupSchedule::kind`: RAdam's rectification besides the bias corrections.
    SCHEDULE_RADAM = 2;
    /// `GroupSchedule::kind`: Adafactor's second-moment weight `t^exponent`.
    SCHEDULE_ADAFACTOR = 3;
    /// The salt of bf16 optimizer state k's stochastic-rounding stream: its seed is
    /// `round_seed ^ STATE_SALT·(k + 1)` (`shaders/adam_states_bf16.wgsl`, the CPU backend).
    STATE_SALT = 0x9e37_79b9;
}

shared_struct! {
    /// The device-side step state (`StepState` in `shaders/common.wgsl`): written by the
    /// finalize pass, read by every clip and update kernel after it.
    DeviceStepState = "StepState" {
        /// Total norm of `g / grad_scale`; NaN when no norm was computed.
        total_norm: f32,
        /// `min(1, max_norm / (total_norm + eps))`, or 1 without a norm clip.
        clip_coef: f32,
        /// `1 / grad_scale`, applied by the update to the stored gradient.
        inv_grad_scale: f32,
        /// The update's clamp bound after the norm clip; 0: no clamp.
        clip_value: f32,
        /// Some gradient was NaN/±Inf, or the total norm overflowed.
        nonfinite: u32,
        /// The update and clip passes are skipped (non-finite under Skip or Error, ±Inf
        /// under ZeroNans, or a norm not below `NormOp::skip_above`).
        skipped: u32,
        /// Optimizer steps taken (skipped steps excluded).
        step: u32,
        /// 1: the clip and update kernels read NaN gradients as 0 (`POLICY_ZERO_NANS`).
        zero_nans: u32,
        /// Always 0, and unknown to the shader compiler: where fma is fused, the update
        /// kernels xor it into each product that feeds a sum or a third factor (`exact` in
        /// `shaders/update.wgsl`), so the driver can neither contract `a·b + c` into an fma
        /// nor reorder the product, and rounds as the f32 reference does.
        exact_zero: u32,
        /// The dynamic loss scale: what the next backward pass multiplies the loss by
        /// (the finalize of a step under a [`crate::LossScaler`] unscales by it, then
        /// grows or backs it off). 1 when no scaler was set.
        loss_scale: f32,
        /// Steps without overflow since the scale last changed (PyTorch's `_growth_tracker`).
        growth_tracker: u32,
        /// Overflows still tolerated before the scale backs off (Megatron's hysteresis
        /// tracker).
        hysteresis_left: u32,
        /// 1: the update rounds bf16 parameters stochastically (copied from the op).
        stochastic: u32,
        /// The seed of stochastic rounding (copied from the op).
        round_seed: u32,
    }
}

impl DeviceStepState {
    /// Before the first step: no norm, coefficient 1, step 0.
    pub(crate) fn initial() -> Self {
        DeviceStepState {
            total_norm: f32::NAN,
            clip_coef: 1.0,
            inv_grad_scale: 1.0,
            loss_scale: 1.0,
            ..Default::default()
        }
    }
}

shared_struct! {
    /// The options of one norm / finalize / clip recording (`NormOp` in
    /// `shaders/common.wgsl`). Each option has this one home: the norm passes, the
    /// finalize, the clamp and the per-tensor scale read it; the finalize copies what the
    /// update needs (`inv_grad_scale`, `clip_value`) into the step state.
    NormOp = "NormOp" {
        /// `SOURCE_*`: where the total norm comes from.
        source: u32,
        /// `NORM_*`: which norm the passes compute.
        kind: u32,
        /// The order p of `NORM_P`.
        p: f32,
        /// The total norm under `SOURCE_GIVEN`.
        given_norm: f32,
        /// Tensors in the set.
        num_tensors: u32,
        /// Tensors folded by a workgroup of their own in the per-tensor pass.
        num_big_tensors: u32,
        /// > 0: clip by norm to this bound; 0: no norm clip.
        max_norm: f32,
        /// `1 / grad_scale`.
        inv_grad_scale: f32,
        /// > 0: clamp to `[-clip_value, clip_value]`; 0: no value clip.
        clip_value: f32,
        /// `POLICY_*`.
        policy: u32,
        /// 1: the finalize advances the step count (optimizer steps).
        count_step: u32,
        /// Parameter groups whose Adam bias corrections the finalize computes (0: none).
        num_groups: u32,
        /// > 0: skip the step unless the total norm is below this bound (Optax's
        /// `skip_large_updates`); 0: no bound.
        skip_above: f32,
        /// `PER_TENSOR_*`: the per-tensor scale's factor.
        per_tensor: u32,
        /// 1: a dynamic loss scaler runs in the finalize: the gradients are unscaled by the
        /// state's `loss_scale` (not `inv_grad_scale`), and the scale is updated.
        scaler: u32,
        /// The scaler's growth factor.
        growth_factor: f32,
        /// The scaler's backoff factor.
        backoff_factor: f32,
        /// Steps without overflow before the scale grows.
        growth_interval: u32,
        /// Overflows tolerated before the scale backs off (1: every overflow, PyTorch).
        hysteresis: u32,
        /// 1: round bf16 parameters stochastically.
        stochastic: u32,
        /// The seed of stochastic rounding.
        round_seed: u32,
    }
}

shared_struct! {
    /// Per slab (`Slab` in `shaders/common.wgsl`): its length and the shape of its chunk
    /// table: `num_big` whole-workgroup chunks, then `num_mid` mid chunks, then small ones.
    Slab = "Slab" {
        /// Elements in the slab.
        len: u32,
        /// Chunks reduced by a whole workgroup each.
        num_big: u32,
        /// Chunks of the mid size class.
        num_mid: u32,
        /// All chunks of the slab.
        num_chunks: u32,
        /// The slab's first element in the set's virtual space, mod 2^32 (stochastic
        /// rounding's element index).
        base: u32,
        /// Padding.
        _pad0: u32,
        /// Padding.
        _pad1: u32,
        /// Padding.
        _pad2: u32,
    }
}

shared_struct! {
    /// One row of a slab's chunk table (`Chunk` in `shaders/common.wgsl`): a run of one
    /// tensor's elements inside the slab.
    Chunk = "Chunk" {
        /// The tensor's index in the set.
        tensor: u32,
        /// First element, relative to the slab (a multiple of 4).
        start: u32,
        /// Elements in the chunk.
        len: u32,
        /// Global chunk index: where this chunk's partial goes.
        partial: u32,
    }
}

shared_struct! {
    /// One reduction's result (`Partial` in `shaders/common.wgsl`): `Σ|g|^p` (max |g| for
    /// L∞) and `FLAG_INF | FLAG_NAN`.
    Partial = "Partial" {
        /// The sum or max.
        value: f32,
        /// `FLAG_*` bits.
        flags: u32,
    }
}

/// The WGSL declared before every shader: kernel constants from [`crate::consts`] and
/// every code of [`CODES`].
pub(crate) fn prelude() -> String {
    let (small, mid) = (CHUNK_CLASSES[0].1, CHUNK_CLASSES[1].1);
    let block_vec4s = TENSOR_ALIGN_ELEMS / u64::from(VEC_WIDTH);
    let mut out = format!(
        "const WORKGROUP_SIZE: u32 = {WORKGROUP_SIZE}u;\n\
         const VEC4_PER_INVOCATION: u32 = {VEC4_PER_INVOCATION}u;\n\
         const SMALL_LANES: u32 = {small}u;\n\
         const MID_LANES: u32 = {mid}u;\n\
         const SERIAL_FOLD_CHUNKS: u32 = {SERIAL_FOLD_CHUNKS}u;\n\
         const BLOCK_VEC4S: u32 = {block_vec4s}u;\n\
         const MAX_GROUPS: u32 = {MAX_GROUPS}u;\n\
         const CHUNK_ELEMS: u32 = {CHUNK_ELEMS}u;\n\
         const CLIP_EPS: f32 = {CLIP_EPS:e};\n\
         const TILE_ROWS: u32 = {TILE_ROWS}u;\n\
         const TILE_COLS: u32 = {TILE_COLS}u;\n\
         const PIECE_FLOATS: u32 = {PIECE_FLOATS}u;\n\
         const FACTOR_SUB_ROWS: u32 = {FACTOR_SUB_ROWS}u;\n\
         const GEMM_TILE: u32 = {GEMM_TILE}u;\n\
         const GEMM_DEPTH: u32 = {GEMM_DEPTH}u;\n\
         const GEMM_TRANSPOSE_LEFT: u32 = {GEMM_TRANSPOSE_LEFT}u;\n\
         const GEMM_TRANSPOSE_RIGHT: u32 = {GEMM_TRANSPOSE_RIGHT}u;\n\
         const GEMM_ROUND_BF16: u32 = {GEMM_ROUND_BF16}u;\n"
    );
    for (name, value) in CODES {
        out.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    // Every struct shared with Rust, generated from its declaration here (a struct no
    // entry point uses costs nothing).
    for wgsl in [
        DeviceStepState::wgsl(),
        NormOp::wgsl(),
        Slab::wgsl(),
        Chunk::wgsl(),
        Partial::wgsl(),
        UnitRow::wgsl(),
        AgcOp::wgsl(),
        GroupSchedule::wgsl(),
        FactorTensor::wgsl(),
        FactorPiece::wgsl(),
        FactorLine::wgsl(),
        FactorBatch::wgsl(),
        MatmulProduct::wgsl(),
        NsMatrix::wgsl(),
        MuonTensor::wgsl(),
    ] {
        out.push('\n');
        out.push_str(&wgsl);
    }
    out
}

shared_struct! {
    /// `struct Unit` of `shaders/agc.wgsl` (generated into the prelude): elements `start + k·stride`, `k < count`,
    /// relative to the slab.
    UnitRow = "Unit" {
        /// First element in the slab.
        start: u32,
        /// Distance between the unit's elements.
        stride: u32,
        /// Elements.
        count: u32,
        /// Padding.
        _pad: u32,
    }
}

shared_struct! {
    /// What the finalize computes a parameter group's step scalars from
    /// (`shaders/norm_finalize.wgsl`, `group_bias`): `(1 − β1^t, 1 − β2^t)` from the logs,
    /// and by `kind` NAdam's or RAdam's two more. Written in stream before every step from
    /// the group's config as it is then (`Rule::schedule`).
    GroupSchedule = "GroupSchedule" {
        /// ln β1, in f64 then rounded; 0: no bias correction.
        log_beta1: f32,
        /// ln β2, in f64 then rounded; 0: no bias correction.
        log_beta2: f32,
        /// `SCHEDULE_ADAM`, `SCHEDULE_NADAM`, `SCHEDULE_RADAM` or `SCHEDULE_ADAFACTOR`.
        kind: u32,
        /// NAdam's β1 (its momentum schedule's ceiling).
        beta1: f32,
        /// NAdam's `ψ·ln 0.96`, in f64 then rounded: `0.96^(tψ) = exp(t·this)`.
        log_momentum_decay: f32,
        /// Adafactor's `beta2_decay`: its weight of step t is `t^exponent`.
        exponent: f32,
        /// Padding.
        _pad1: u32,
        /// Padding.
        _pad2: u32,
    }
}

shared_struct! {
    /// `struct AgcOp` of `shaders/agc.wgsl` (generated into the prelude).
    AgcOp = "AgcOp" {
        /// `max = clipping · max(‖p_u‖, eps)`.
        clipping: f32,
        /// The floor of a unit's parameter norm.
        eps: f32,
        /// Uniforms are read in 16-byte rows.
        _pad0: u32,
        /// Padding.
        _pad1: u32,
    }
}

/// Case `k` of a state part's `switch slot` (the last slot's is `default`), its body `text`
/// (indented lines).
pub(crate) fn slot_case(k: usize, last: bool, text: &str) -> String {
    let label = if last {
        "default".to_string()
    } else {
        format!("case {k}u")
    };
    format!("        {label}: {{\n{text}        }}\n")
}

// Adafactor's factored states and the tables of their reductions (`crate::storage::factored`
// lays them out; `shaders/factor_*.wgsl`).

/// Rows of a tile (four passes of 32 rows through workgroup memory).
pub(crate) const TILE_ROWS: u32 = 128;
/// Columns of a tile.
pub(crate) const TILE_COLS: u32 = 64;
/// Rows of a tile that pass through workgroup memory at once (`factor_partials.wgsl`).
pub(crate) const FACTOR_SUB_ROWS: u32 = 32;
/// Partials a piece writes: its rows' sums, then its columns'.
pub(crate) const PIECE_FLOATS: u32 = TILE_ROWS + TILE_COLS;

shared_struct! {
    /// `struct FactorTensor`: where a tensor's second moment lives. Generated into the
    /// prelude.
    FactorTensor = "FactorTensor" {
        /// The tensor's first element in the set's virtual space, mod 2^32.
        offset: u32,
        /// Elements.
        numel: u32,
        /// Columns of each matrix; 0: a vector (its `variance` whole).
        cols: u32,
        /// Rows of each matrix.
        rows: u32,
        /// Its first row value in `row_var`.
        row_base: u32,
        /// Its first column value in `col_var`.
        col_base: u32,
        /// Its first matrix's row mean in `factor_means`.
        mean_base: u32,
        /// Its parameter group.
        group: u32,
    }
}

shared_struct! {
    /// `struct FactorPiece`: the part of one tile in one slab, reduced by one workgroup.
    FactorPiece = "FactorPiece" {
        /// The tensor.
        tensor: u32,
        /// The tile's first row, counting rows over all of the tensor's matrices.
        row0: u32,
        /// The tile's first column.
        col0: u32,
        /// Rows of the tile (≤ TILE_ROWS).
        rows: u32,
        /// Columns of the tile (≤ TILE_COLS).
        cols: u32,
        /// The first element of the tensor in this slab (relative to the tensor).
        lo: u32,
        /// One past its last.
        hi: u32,
        /// The piece's partials: `PIECE_FLOATS` floats from `slot·PIECE_FLOATS`.
        slot: u32,
    }
}

shared_struct! {
    /// `struct FactorLine`: up to 64 rows or columns of one matrix, folded from their pieces.
    FactorLine = "FactorLine" {
        /// The tensor (its group's hyperparameters).
        tensor: u32,
        /// The first value it writes in `row_var` (rows) or `col_var` (columns).
        first: u32,
        /// Values it writes.
        count: u32,
        /// The first of its values in each piece's partials.
        part: u32,
        /// Its first piece in the line-piece list.
        start: u32,
        /// Its pieces, in fold order.
        pieces: u32,
        /// 1: columns (into `col_var`); 0: rows.
        is_col: u32,
        /// The mean's divisor: columns for a row, rows for a column.
        divisor: u32,
    }
}

shared_struct! {
    /// `struct FactorBatch`: one matrix, whose row values are averaged.
    FactorBatch = "FactorBatch" {
        /// The tensor.
        tensor: u32,
        /// Its first row value in `row_var`.
        row_first: u32,
        /// Its rows.
        rows: u32,
        /// Where the mean goes in `factor_means`.
        mean: u32,
    }
}

/// Rows (and columns) of `C` one workgroup of `shaders/matmul.wgsl` computes.
pub(crate) const GEMM_TILE: u32 = 64;
/// Elements of the summed dimension a workgroup stages at a time.
pub(crate) const GEMM_DEPTH: u32 = 16;
/// `MatmulProduct::flags` bit: `op(L) = Lᵀ`.
pub(crate) const GEMM_TRANSPOSE_LEFT: u32 = 1;
/// `MatmulProduct::flags` bit: `op(R) = Rᵀ`.
pub(crate) const GEMM_TRANSPOSE_RIGHT: u32 = 2;
/// `MatmulProduct::flags` bit: round each result to bf16.
pub(crate) const GEMM_ROUND_BF16: u32 = 4;

shared_struct! {
    /// `struct MatmulProduct` of `shaders/matmul.wgsl`: one product
    /// `C = alpha·op(L)·op(R) + beta·D` of a batch (`crate::reference::Gemm`), its matrices
    /// at element offsets in the batch's one workspace.
    MatmulProduct = "MatmulProduct" {
        /// Offset of `L`.
        left: u32,
        /// Offset of `R`.
        right: u32,
        /// Offset of `D` (read when `beta` is not 0).
        addend: u32,
        /// Offset of `C`.
        out: u32,
        /// Rows of `op(L)` and `C`.
        m: u32,
        /// The summed dimension (the stored operands' stride along it).
        k: u32,
        /// The first of `k` this pass sums (`GEMM_PASS_DEPTH`'s multiples).
        k_begin: u32,
        /// One past its last.
        k_end: u32,
        /// Columns of `op(R)` and `C`.
        n: u32,
        /// `GEMM_*` bits.
        flags: u32,
        /// Scales the product.
        alpha: f32,
        /// Scales `D`.
        beta: f32,
        /// The batch's tile number of this product's first tile.
        first_tile: u32,
        /// Its tiles across `C`'s columns.
        tiles_n: u32,
    }
}

shared_struct! {
    /// `struct NsMatrix` of `shaders/ns_scale.wgsl`: one matrix divided by its Frobenius
    /// norm.
    NsMatrix = "NsMatrix" {
        /// Offset of its first element in the workspace.
        first: u32,
        /// Its elements.
        len: u32,
        /// 1: round to bf16.
        round_bf16: u32,
        /// The norm's floor.
        eps: f32,
    }
}

shared_struct! {
    /// `struct MuonTensor` of `shaders/rules/muon_table.wgsl`: one tensor of a Muon
    /// optimizer, a matrix, and where its Newton–Schulz input and result are.
    MuonTensor = "MuonTensor" {
        /// Its first element in the set's virtual space.
        offset: u32,
        /// Its elements.
        numel: u32,
        /// Its stored rows.
        rows: u32,
        /// Its stored columns.
        cols: u32,
        /// 1: more rows than columns (the iteration runs on its transpose).
        tall: u32,
        /// Where its input `X` is in the workspace.
        x: u32,
        /// Where its result `O` is.
        out: u32,
        /// `adjusted_lr / lr` of its shape (`adjust_lr_fn`).
        lr_scale: f32,
    }
}
