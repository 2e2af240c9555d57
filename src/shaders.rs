//! The WGSL sources: one kernel table naming each kernel, its file and the snippets it is
//! assembled from. A kernel's source is `prelude + common.wgsl + <kernel>.wgsl +
//! snippets`; the prelude comes from [`crate::abi::prelude`], so Rust and WGSL share
//! every constant and code.

use crate::abi::prelude;
use crate::dtype::Dtype;

/// A WGSL file appended after a kernel body that uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Snippet {
    /// `shaders/elementwise.wgsl`: the entry point of kernels that define `enabled()` and
    /// `apply(i)`.
    Elementwise,
    /// `shaders/reduce.wgsl`: the fixed workgroup tree `tree_reduce` and the two-level
    /// fold `reduce_to_first_shared`.
    Reduce,
    /// The device's `reduce_to_first`: `shaders/reduce_first_subgroup.wgsl` where the
    /// Context found subgroups of one fixed size ([`Kernel::source_for`]), else
    /// `shaders/reduce_first_shared.wgsl`.
    ReduceFirst,
    /// `shaders/update.wgsl`: the bindings and skip rule shared by the update kernels, and
    /// `shaders/rounding.wgsl`: their correctly rounded divisions and square roots.
    Update,
    /// `shaders/update_split.wgsl`: the gradients in a binding of their own.
    UpdateSplit,
    /// `shaders/update_shared.wgsl`: the gradients inside the params binding.
    UpdateShared,
    /// `shaders/locate_direct.wgsl`: elementwise addressing of a slab of clipstep's own.
    LocateDirect,
    /// `shaders/locate_pooled.wgsl`: elementwise addressing of a pool, through its place table.
    LocatePooled,
    /// `shaders/lars_rule.wgsl`: LARS's group table and trust parameters.
    LarsRule,
    /// `shaders/lamb_rule.wgsl`: LAMB's group table and trust parameters.
    LambRule,
    /// `shaders/trust_partials.wgsl`: the trust pass's entry point (per-chunk Σp², Σu²).
    TrustPartials,
    /// `shaders/reduce_vec2.wgsl`: the workgroup tree over pairs of sums.
    ReduceVec2,
    /// `shaders/agc_direct.wgsl`: adaptive clipping's elements on a slab of clipstep's own.
    AgcDirect,
    /// `shaders/agc_pooled.wgsl`: adaptive clipping's elements on a caller's pool.
    AgcPooled,
    /// `shaders/agc_shared.wgsl`: the same, params and grads in one buffer.
    AgcShared,
    /// `shaders/half.wgsl`: 16-bit conversions and stochastic rounding's generator.
    Half,
    /// `shaders/bf16.wgsl`: bf16 as a variant's 16-bit type (`widen4`, `narrow4_*`).
    Bf16,
    /// `shaders/f16.wgsl`: f16 as a variant's 16-bit type.
    F16,
    /// `shaders/grads_f32.wgsl`: the norm partials' f32 gradients.
    GradsF32,
    /// `shaders/grads_half.wgsl`: the norm partials' 16-bit gradients.
    GradsHalf,
    /// `shaders/update_half_master.wgsl` + `round_param.wgsl`: 16-bit gradients, f32
    /// master weights and their 16-bit model copy.
    UpdateHalfMaster,
    /// `shaders/update_half_inplace.wgsl` + `round_param.wgsl`: 16-bit gradients and
    /// parameters, updated in place.
    UpdateHalfInPlace,
    /// `shaders/adam_states_f32.wgsl`: Adam's states in f32.
    AdamStatesF32,
    /// `shaders/grads_rw_f32.wgsl`: a clip kernel's f32 gradients, in place.
    GradsRwF32,
    /// `shaders/grads_rw_half.wgsl`: a clip kernel's 16-bit gradients, in place.
    GradsRwHalf,
    /// `shaders/adam_states_bf16.wgsl`: Adam's states in bf16, stochastically rounded.
    AdamStatesBf16,
}

impl Snippet {
    fn source(self) -> &'static str {
        match self {
            Snippet::Elementwise => include_str!("../shaders/elementwise.wgsl"),
            Snippet::Reduce => include_str!("../shaders/reduce.wgsl"),
            Snippet::ReduceFirst => include_str!("../shaders/reduce_first_shared.wgsl"),
            Snippet::Update => concat!(
                include_str!("../shaders/update.wgsl"),
                "\n",
                include_str!("../shaders/rounding.wgsl")
            ),
            Snippet::UpdateSplit => include_str!("../shaders/update_split.wgsl"),
            Snippet::UpdateShared => include_str!("../shaders/update_shared.wgsl"),
            Snippet::LocateDirect => include_str!("../shaders/locate_direct.wgsl"),
            Snippet::LocatePooled => include_str!("../shaders/locate_pooled.wgsl"),
            Snippet::LarsRule => include_str!("../shaders/lars_rule.wgsl"),
            Snippet::LambRule => include_str!("../shaders/lamb_rule.wgsl"),
            Snippet::TrustPartials => include_str!("../shaders/trust_partials.wgsl"),
            Snippet::ReduceVec2 => include_str!("../shaders/reduce_vec2.wgsl"),
            Snippet::AgcDirect => include_str!("../shaders/agc_direct.wgsl"),
            Snippet::AgcPooled => include_str!("../shaders/agc_pooled.wgsl"),
            Snippet::AgcShared => include_str!("../shaders/agc_shared.wgsl"),
            Snippet::Half => include_str!("../shaders/half.wgsl"),
            Snippet::Bf16 => include_str!("../shaders/bf16.wgsl"),
            Snippet::F16 => include_str!("../shaders/f16.wgsl"),
            Snippet::GradsF32 => include_str!("../shaders/grads_f32.wgsl"),
            Snippet::GradsHalf => include_str!("../shaders/grads_half.wgsl"),
            Snippet::UpdateHalfMaster => concat!(
                include_str!("../shaders/update_half_master.wgsl"),
                "\n",
                include_str!("../shaders/round_param.wgsl")
            ),
            Snippet::AdamStatesF32 => include_str!("../shaders/adam_states_f32.wgsl"),
            Snippet::GradsRwF32 => include_str!("../shaders/grads_rw_f32.wgsl"),
            Snippet::GradsRwHalf => include_str!("../shaders/grads_rw_half.wgsl"),
            Snippet::AdamStatesBf16 => include_str!("../shaders/adam_states_bf16.wgsl"),
            Snippet::UpdateHalfInPlace => concat!(
                include_str!("../shaders/update_half_inplace.wgsl"),
                "\n",
                include_str!("../shaders/round_param.wgsl")
            ),
        }
    }
}

const COMMON: &str = include_str!("../shaders/common.wgsl");

/// Declares [`Kernel`] and its table from one list: variant, file name, snippets.
macro_rules! kernels {
    ($($(#[$doc:meta])* $variant:ident = $file:literal [$($snippet:ident),*];)*) => {
        /// Every compute kernel of the crate.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Kernel {
            $($(#[$doc])* $variant,)*
        }

        impl Kernel {
            /// Every kernel, in pipeline-cache order.
            pub(crate) const ALL: &[Kernel] = &[$(Kernel::$variant),*];

            /// The file name under `shaders/`, without `.wgsl`; also the pipeline label.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Kernel::$variant => $file,)*
                }
            }

            fn body(self) -> &'static str {
                match self {
                    $(Kernel::$variant => include_str!(concat!("../shaders/", $file, ".wgsl")),)*
                }
            }

            fn snippets(self) -> &'static [Snippet] {
                match self {
                    $(Kernel::$variant => &[$(Snippet::$snippet),*],)*
                }
            }
        }
    };
}

kernels! {
    /// Per-chunk partial power sums (`src/kernels/norm.rs`).
    NormPartials = "norm_partials" [Reduce, ReduceFirst, GradsF32];
    /// The partials over a bf16 slab.
    NormPartialsBf16 = "norm_partials" [Reduce, ReduceFirst, GradsHalf, Bf16, Half];
    /// The partials over an f16 slab.
    NormPartialsF16 = "norm_partials" [Reduce, ReduceFirst, GradsHalf, F16, Half];
    /// Per-tensor fold of the partials.
    NormTensors = "norm_tensors" [Reduce];
    /// Total norm, per-tensor norms and the step state.
    NormFinalize = "norm_finalize" [Reduce];
    /// `g ← g · clip_coef` (`src/kernels/clip.rs`).
    Scale = "scale" [GradsRwF32, Elementwise, LocateDirect];
    /// `g_t ← g_t · clip_coef(‖g_t‖)`.
    ScalePerTensor = "scale_per_tensor" [GradsRwF32];
    /// `g ← clamp(g, −c, c)`.
    Clamp = "clamp" [GradsRwF32, Elementwise, LocateDirect];
    /// Adaptive gradient clipping, one invocation per unit (`src/kernels/agc.rs`).
    Agc = "agc" [ReduceVec2, AgcDirect];
    /// SGD update (`src/kernels/update.rs`).
    Sgd = "sgd" [Update, UpdateSplit, Elementwise, LocateDirect];
    /// Adam / AdamW update.
    Adam = "adam" [AdamStatesF32, Update, UpdateSplit, Elementwise, LocateDirect];
    /// RMSprop update.
    RmsProp = "rmsprop" [Update, UpdateSplit, Elementwise, LocateDirect];
    /// Adagrad update.
    Adagrad = "adagrad" [Update, UpdateSplit, Elementwise, LocateDirect];
    /// Lion update.
    Lion = "lion" [Update, UpdateSplit, Elementwise, LocateDirect];
    /// LARS update, after its trust pass and fold (`src/kernels/trust.rs`).
    Lars = "lars" [LarsRule, Update, UpdateSplit, Elementwise, LocateDirect];
    /// LARS trust pass: per-chunk Σp², Σu².
    LarsTrust = "lars_trust" [LarsRule, Update, UpdateSplit, TrustPartials, ReduceVec2];
    /// LARS per-tensor trust ratios.
    LarsFold = "trust_fold" [LarsRule];
    /// LAMB update, after its trust pass (which updates the moments) and fold.
    Lamb = "lamb" [LambRule, Update, UpdateSplit, Elementwise, LocateDirect];
    /// LAMB trust pass: the moments, and per-chunk Σp², Σu².
    LambTrust = "lamb_trust" [LambRule, Update, UpdateSplit, TrustPartials, ReduceVec2];
    /// LAMB per-tensor trust ratios.
    LambFold = "trust_fold" [LambRule];
    /// `Scale` over a pool of a caller's tensors (`src/pool.rs`).
    ScalePooled = "scale" [GradsRwF32, Elementwise, LocatePooled];
    /// `Clamp` over a pool.
    ClampPooled = "clamp" [GradsRwF32, Elementwise, LocatePooled];
    /// SGD over a pool, params and grads in two buffers.
    SgdPooled = "sgd" [Update, UpdateSplit, Elementwise, LocatePooled];
    /// Adam / AdamW over a pool.
    AdamPooled = "adam" [AdamStatesF32, Update, UpdateSplit, Elementwise, LocatePooled];
    /// RMSprop over a pool.
    RmsPropPooled = "rmsprop" [Update, UpdateSplit, Elementwise, LocatePooled];
    /// Adagrad over a pool.
    AdagradPooled = "adagrad" [Update, UpdateSplit, Elementwise, LocatePooled];
    /// Lion over a pool.
    LionPooled = "lion" [Update, UpdateSplit, Elementwise, LocatePooled];
    /// Adaptive clipping over a caller's pool.
    AgcPooled = "agc" [ReduceVec2, AgcPooled];
    /// Adaptive clipping over a pool whose params and grads share one buffer.
    AgcShared = "agc" [ReduceVec2, AgcShared];
    /// SGD over a pool whose params and grads share one buffer (bound once).
    SgdShared = "sgd" [Update, UpdateShared, Elementwise, LocatePooled];
    /// Adam / AdamW, params and grads in one buffer.
    AdamShared = "adam" [AdamStatesF32, Update, UpdateShared, Elementwise, LocatePooled];
    /// RMSprop, params and grads in one buffer.
    RmsPropShared = "rmsprop" [Update, UpdateShared, Elementwise, LocatePooled];
    /// Adagrad, params and grads in one buffer.
    AdagradShared = "adagrad" [Update, UpdateShared, Elementwise, LocatePooled];
    /// Lion, params and grads in one buffer.
    LionShared = "lion" [Update, UpdateShared, Elementwise, LocatePooled];
    /// SGD on a bf16 slab with f32 master weights.
    SgdBf16 = "sgd" [Update, UpdateHalfMaster, Bf16, Half, Elementwise, LocateDirect];
    /// SGD on a bf16 slab updated in place.
    SgdBf16InPlace = "sgd" [Update, UpdateHalfInPlace, Bf16, Half, Elementwise, LocateDirect];
    /// SGD on a f16 slab with f32 master weights.
    SgdF16 = "sgd" [Update, UpdateHalfMaster, F16, Half, Elementwise, LocateDirect];
    /// SGD on a f16 slab updated in place.
    SgdF16InPlace = "sgd" [Update, UpdateHalfInPlace, F16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW on a bf16 slab with f32 master weights.
    AdamBf16 = "adam" [AdamStatesF32, Update, UpdateHalfMaster, Bf16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW on a bf16 slab updated in place.
    AdamBf16InPlace = "adam" [AdamStatesF32, Update, UpdateHalfInPlace, Bf16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW on a f16 slab with f32 master weights.
    AdamF16 = "adam" [AdamStatesF32, Update, UpdateHalfMaster, F16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW on a f16 slab updated in place.
    AdamF16InPlace = "adam" [AdamStatesF32, Update, UpdateHalfInPlace, F16, Half, Elementwise, LocateDirect];
    /// RMSprop on a bf16 slab with f32 master weights.
    RmsPropBf16 = "rmsprop" [Update, UpdateHalfMaster, Bf16, Half, Elementwise, LocateDirect];
    /// RMSprop on a bf16 slab updated in place.
    RmsPropBf16InPlace = "rmsprop" [Update, UpdateHalfInPlace, Bf16, Half, Elementwise, LocateDirect];
    /// RMSprop on a f16 slab with f32 master weights.
    RmsPropF16 = "rmsprop" [Update, UpdateHalfMaster, F16, Half, Elementwise, LocateDirect];
    /// RMSprop on a f16 slab updated in place.
    RmsPropF16InPlace = "rmsprop" [Update, UpdateHalfInPlace, F16, Half, Elementwise, LocateDirect];
    /// Adagrad on a bf16 slab with f32 master weights.
    AdagradBf16 = "adagrad" [Update, UpdateHalfMaster, Bf16, Half, Elementwise, LocateDirect];
    /// Adagrad on a bf16 slab updated in place.
    AdagradBf16InPlace = "adagrad" [Update, UpdateHalfInPlace, Bf16, Half, Elementwise, LocateDirect];
    /// Adagrad on a f16 slab with f32 master weights.
    AdagradF16 = "adagrad" [Update, UpdateHalfMaster, F16, Half, Elementwise, LocateDirect];
    /// Adagrad on a f16 slab updated in place.
    AdagradF16InPlace = "adagrad" [Update, UpdateHalfInPlace, F16, Half, Elementwise, LocateDirect];
    /// Lion on a bf16 slab with f32 master weights.
    LionBf16 = "lion" [Update, UpdateHalfMaster, Bf16, Half, Elementwise, LocateDirect];
    /// Lion on a bf16 slab updated in place.
    LionBf16InPlace = "lion" [Update, UpdateHalfInPlace, Bf16, Half, Elementwise, LocateDirect];
    /// Lion on a f16 slab with f32 master weights.
    LionF16 = "lion" [Update, UpdateHalfMaster, F16, Half, Elementwise, LocateDirect];
    /// Lion on a f16 slab updated in place.
    LionF16InPlace = "lion" [Update, UpdateHalfInPlace, F16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW with bf16 states, on an f32 slab.
    AdamStatesBf16 = "adam" [AdamStatesBf16, Half, Update, UpdateSplit, Elementwise, LocateDirect];
    /// Adam / AdamW with bf16 states, on an f32 pool.
    AdamPooledStatesBf16 = "adam" [AdamStatesBf16, Half, Update, UpdateSplit, Elementwise, LocatePooled];
    /// Adam / AdamW with bf16 states, params and grads in one buffer.
    AdamSharedStatesBf16 = "adam" [AdamStatesBf16, Half, Update, UpdateShared, Elementwise, LocatePooled];
    /// Adam / AdamW with bf16 states on a bf16 slab with master weights.
    AdamBf16StatesBf16 = "adam" [AdamStatesBf16, Update, UpdateHalfMaster, Bf16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW with bf16 states on a bf16 slab updated in place.
    AdamBf16InPlaceStatesBf16 = "adam" [AdamStatesBf16, Update, UpdateHalfInPlace, Bf16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW with bf16 states on an f16 slab with master weights.
    AdamF16StatesBf16 = "adam" [AdamStatesBf16, Update, UpdateHalfMaster, F16, Half, Elementwise, LocateDirect];
    /// Adam / AdamW with bf16 states on an f16 slab updated in place.
    AdamF16InPlaceStatesBf16 = "adam" [AdamStatesBf16, Update, UpdateHalfInPlace, F16, Half, Elementwise, LocateDirect];
    /// `Scale` on a bf16 slab.
    ScaleBf16 = "scale" [GradsRwHalf, Bf16, Half, Elementwise, LocateDirect];
    /// `Scale` on an f16 slab.
    ScaleF16 = "scale" [GradsRwHalf, F16, Half, Elementwise, LocateDirect];
    /// `Clamp` on a bf16 slab.
    ClampBf16 = "clamp" [GradsRwHalf, Bf16, Half, Elementwise, LocateDirect];
    /// `Clamp` on an f16 slab.
    ClampF16 = "clamp" [GradsRwHalf, F16, Half, Elementwise, LocateDirect];
    /// `ScalePerTensor` on a bf16 slab.
    ScalePerTensorBf16 = "scale_per_tensor" [GradsRwHalf, Bf16, Half];
    /// `ScalePerTensor` on an f16 slab.
    ScalePerTensorF16 = "scale_per_tensor" [GradsRwHalf, F16, Half];
}

impl Kernel {
    /// The variant of elementwise kernel `self` for a slab: of clipstep's own (`self`), a
    /// pool (`*Pooled`), or a pool whose params and grads share a buffer (`*Shared`, for
    /// the update kernels). Other kernels are returned as they are.
    pub(crate) fn for_slab(self, pooled: bool, shared: bool) -> Kernel {
        use Kernel::*;
        match (self, pooled, shared) {
            (Scale, true, _) => ScalePooled,
            (Agc, true, false) => AgcPooled,
            (Agc, true, true) => AgcShared,
            (Clamp, true, _) => ClampPooled,
            (Sgd, true, false) => SgdPooled,
            (Adam, true, false) => AdamPooled,
            (RmsProp, true, false) => RmsPropPooled,
            (Adagrad, true, false) => AdagradPooled,
            (Lion, true, false) => LionPooled,
            (Sgd, true, true) => SgdShared,
            (Adam, true, true) => AdamShared,
            (RmsProp, true, true) => RmsPropShared,
            (Adagrad, true, true) => AdagradShared,
            (Lion, true, true) => LionShared,
            (kernel, _, _) => kernel,
        }
    }

    /// The variant of `self` for a slab of 16-bit `dtype` elements, with f32 master weights
    /// (`master`) or updated in place: the norm partials and the elementwise update rules
    /// have one; `None` for the rest (the caller reports it as not supported).
    pub(crate) fn for_dtype(self, dtype: Dtype, master: bool) -> Option<Kernel> {
        use Kernel::*;
        let bf16 = dtype == Dtype::Bf16;
        let pick = |b: Kernel, bi: Kernel, f: Kernel, fi: Kernel| match (bf16, master) {
            (true, true) => b,
            (true, false) => bi,
            (false, true) => f,
            (false, false) => fi,
        };
        if !dtype.is_16_bit() {
            return Some(self);
        }
        Some(match self {
            NormPartials => {
                if bf16 {
                    NormPartialsBf16
                } else {
                    NormPartialsF16
                }
            }
            Sgd => pick(SgdBf16, SgdBf16InPlace, SgdF16, SgdF16InPlace),
            Adam => pick(AdamBf16, AdamBf16InPlace, AdamF16, AdamF16InPlace),
            RmsProp => pick(
                RmsPropBf16,
                RmsPropBf16InPlace,
                RmsPropF16,
                RmsPropF16InPlace,
            ),
            Adagrad => pick(
                AdagradBf16,
                AdagradBf16InPlace,
                AdagradF16,
                AdagradF16InPlace,
            ),
            Lion => pick(LionBf16, LionBf16InPlace, LionF16, LionF16InPlace),
            Scale => pick(ScaleBf16, ScaleBf16, ScaleF16, ScaleF16),
            Clamp => pick(ClampBf16, ClampBf16, ClampF16, ClampF16),
            ScalePerTensor => pick(
                ScalePerTensorBf16,
                ScalePerTensorBf16,
                ScalePerTensorF16,
                ScalePerTensorF16,
            ),
            _ => return None,
        })
    }

    /// The variant of Adam kernel `self` (any slab variant) that keeps its states in bf16;
    /// `None` for other kernels.
    pub(crate) fn with_bf16_states(self) -> Option<Kernel> {
        use Kernel::*;
        Some(match self {
            Adam => AdamStatesBf16,
            AdamPooled => AdamPooledStatesBf16,
            AdamShared => AdamSharedStatesBf16,
            AdamBf16 => AdamBf16StatesBf16,
            AdamBf16InPlace => AdamBf16InPlaceStatesBf16,
            AdamF16 => AdamF16StatesBf16,
            AdamF16InPlace => AdamF16InPlaceStatesBf16,
            _ => return None,
        })
    }

    /// Whether the kernel's pipelines are compiled with the Context: every kernel but the
    /// 16-bit and bf16-state variants (those built on `half.wgsl`), compiled on first use.
    pub(crate) fn eager(self) -> bool {
        !self.snippets().contains(&Snippet::Half)
    }

    /// Whether the kernel addresses a pool through its place table (binding 10).
    pub(crate) fn pooled(self) -> bool {
        self.snippets().iter().any(|s| {
            matches!(
                s,
                Snippet::LocatePooled | Snippet::AgcPooled | Snippet::AgcShared
            )
        })
    }

    /// The kernel's full WGSL source for a device without subgroups (the portable one: its
    /// bindings are every variant's).
    pub(crate) fn source(self) -> String {
        self.source_for(None)
    }

    /// The kernel's full WGSL source for a device with subgroups of `subgroup_size`
    /// invocations (`None`: none, or of no fixed size): the norm partials then fold each
    /// subgroup with subgroup operations (`shaders/reduce_first_subgroup.wgsl`).
    pub(crate) fn source_for(self, subgroup_size: Option<u32>) -> String {
        let mut out = prelude();
        out.push_str(COMMON);
        out.push('\n');
        out.push_str(self.body());
        for &snippet in self.snippets() {
            out.push('\n');
            match (snippet, subgroup_size) {
                (Snippet::ReduceFirst, Some(size)) => {
                    out.push_str(&format!("const SUBGROUP_SIZE: u32 = {size}u;\n"));
                    out.push_str(include_str!("../shaders/reduce_first_subgroup.wgsl"));
                }
                _ => out.push_str(snippet.source()),
            }
        }
        out
    }

    /// The position of this kernel in [`Kernel::ALL`] (the macro lists both in one order),
    /// so the pipeline cache is indexed without a search on the encode path.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether the kernel is specialized on the norm kind: the kernels built on
    /// `reduce.wgsl` declare `override NORM_KIND`, and get one pipeline per `NORM_*` code,
    /// so no uniform-selected branch sits in their loops (a driver that specializes shaders
    /// on uniform values at dispatch time has nothing to specialize).
    pub(crate) fn norm_specialized(self) -> bool {
        self.snippets().contains(&Snippet::Reduce)
    }

    /// This kernel's pipeline for norm kind `kind` (`NORM_*`; ignored unless
    /// [`Kernel::norm_specialized`]).
    pub(crate) fn for_norm(self, kind: u32) -> PipelineKey {
        PipelineKey {
            kernel: self,
            norm_kind: kind,
            zero_nans: false,
            shape: SHAPE_ALL,
        }
    }

    /// This kernel's pipeline for a step of `shape` (`SHAPE_*` bits: the code paths some
    /// group or the step's options need; ignored unless [`Kernel::shape_specialized`]).
    pub(crate) fn shaped(self, shape: u32) -> PipelineKey {
        PipelineKey {
            shape: shape & SHAPE_ALL,
            ..self.into()
        }
    }

    /// Whether the kernel has a variant per step shape: the update kernels and the trust
    /// passes (every kernel with `shaders/update.wgsl`, which declares the shape's
    /// overrides).
    pub(crate) fn shape_specialized(self) -> bool {
        self.snippets().contains(&Snippet::Update)
    }

    /// Whether the kernel also has variants that count NaN elements as 0 (`override
    /// ZERO_NANS` in `shaders/norm_partials.wgsl`): the only one that reads gradients.
    pub(crate) fn zero_nans_specialized(self) -> bool {
        matches!(
            self,
            Kernel::NormPartials | Kernel::NormPartialsBf16 | Kernel::NormPartialsF16
        )
    }
}

impl Kernel {
    /// The bind group layout of the kernel's group 0, reflected from its WGSL by naga: a
    /// uniform buffer per `var<uniform>`, a storage buffer (read-only unless declared
    /// `read_write`) per `var<storage>`. The kernel sources are fixed and validated by the
    /// tests, so a parse failure here is a bug. Reflected once per process: Contexts and
    /// optimizers ask for it, and the sources never change.
    pub(crate) fn bind_group_layout_entries(self) -> &'static [wgpu::BindGroupLayoutEntry] {
        static ENTRIES: std::sync::OnceLock<Vec<Vec<wgpu::BindGroupLayoutEntry>>> =
            std::sync::OnceLock::new();
        &ENTRIES.get_or_init(|| Kernel::ALL.iter().map(|k| k.reflect_entries()).collect())
            [self.index()]
    }

    fn reflect_entries(self) -> Vec<wgpu::BindGroupLayoutEntry> {
        use wgpu::naga::AddressSpace;
        let module = wgpu::naga::front::wgsl::parse_str(&self.source())
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", self.name()));
        let mut entries: Vec<_> = module
            .global_variables
            .iter()
            .filter_map(|(_, var)| {
                let binding = var.binding.as_ref()?;
                let ty = match var.space {
                    AddressSpace::Uniform => wgpu::BufferBindingType::Uniform,
                    AddressSpace::Storage { access } => wgpu::BufferBindingType::Storage {
                        read_only: !access.contains(wgpu::naga::StorageAccess::STORE),
                    },
                    _ => return None,
                };
                Some(wgpu::BindGroupLayoutEntry {
                    binding: binding.binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
            })
            .collect();
        entries.sort_by_key(|e| e.binding);
        entries
    }
}

/// A step-shape bit: some group clamps by value this step (`override VALUE_CLIP`).
pub(crate) const SHAPE_VALUE_CLIP: u32 = 1;
/// A step-shape bit: some Adam group keeps `max_exp_avg_sq` (`override AMSGRAD`).
pub(crate) const SHAPE_AMSGRAD: u32 = 2;
/// A step-shape bit: some group's `torch.lerp` weight is ≥ 0.5 (or NaN), the form
/// `end − (end − start)·(1 − w)` (`override LERP_HIGH`).
pub(crate) const SHAPE_LERP_HIGH: u32 = 4;
/// [`SHAPE_LERP_HIGH`] where `torch_lerp` (`shaders/update.wgsl`) with `weight`, the f32 of
/// the group table, takes its second form: `weight < 0.5` is false (NaN included).
pub(crate) fn lerp_shape(weight: f32) -> u32 {
    if weight < 0.5 {
        0
    } else {
        SHAPE_LERP_HIGH
    }
}
/// A step-shape bit: some group keeps a momentum buffer (SGD with momentum ≠ 0, RMSprop
/// with momentum > 0: `override MOMENTUM`).
pub(crate) const SHAPE_MOMENTUM: u32 = 8;
/// A step-shape bit: some SGD group is Nesterov's (`override NESTEROV`).
pub(crate) const SHAPE_NESTEROV: u32 = 16;
/// A step-shape bit: some RMSprop group is centered (`override CENTERED`).
pub(crate) const SHAPE_CENTERED: u32 = 32;
/// A step-shape bit, set per slab (`UpdateKernel::encode`): the slab holds a group other
/// than group 0, or more than one group, so each vec4 reads its group from the slab's block
/// table (`override GROUP_GATHER`). Without it (a slab all of group 0: every slab of a
/// one-group optimizer) the kernel indexes the group table by the constant 0, one scalar
/// load per hyperparameter instead of a gather per vec4 (lavapipe, AdamW at 16M: 78–81 ms
/// with the gather, 67–70 without).
pub(crate) const SHAPE_GROUP_GATHER: u32 = 64;
/// Every shape bit: the variant that runs every path (always correct).
pub(crate) const SHAPE_ALL: u32 = SHAPE_VALUE_CLIP
    | SHAPE_AMSGRAD
    | SHAPE_LERP_HIGH
    | SHAPE_MOMENTUM
    | SHAPE_NESTEROV
    | SHAPE_CENTERED
    | SHAPE_GROUP_GATHER;

/// One compiled pipeline: a kernel and, for norm-specialized kernels, its `NORM_KIND`
/// (and for the partials, whether NaN elements count as 0: `ZERO_NANS`), for the update
/// kernels the step's shape: which option-dependent paths are compiled in. A path left out
/// of a shape is one no group and no option of the step takes: the kernel's branch on the
/// option is still there, but the compiler drops it. On a GPU an untaken uniform branch
/// costs nothing; a CPU driver (lavapipe) runs both sides of every branch under a mask,
/// so there a step pays for every path it does not take (AdamW with the value clamp and
/// amsgrad compiled in: 87–89 ms at 16M, without either 82–84 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PipelineKey {
    pub kernel: Kernel,
    pub norm_kind: u32,
    pub zero_nans: bool,
    pub shape: u32,
}

impl PipelineKey {
    /// The same pipeline with NaN elements counted as 0 when `zero` (only the partials
    /// kernel has such variants; the key of any other kernel is returned as it is).
    pub(crate) fn zeroing_nans(self, zero: bool) -> PipelineKey {
        PipelineKey {
            zero_nans: zero && self.kernel.zero_nans_specialized(),
            ..self
        }
    }

    /// The pipeline constants of this variant on a device whose `fma` is (`fused_fma`) or
    /// is not a fused multiply-add: the update kernels declare `override FUSED_FMA`, which
    /// turns on their correction of divisions and square roots (`div_rn` in
    /// `shaders/update.wgsl`, exact only with a fused remainder).
    pub(crate) fn constants(self, fused_fma: bool) -> Vec<(&'static str, f64)> {
        if self.kernel.shape_specialized() {
            let bit = |b: u32| f64::from(u8::from(self.shape & b != 0));
            return vec![
                ("FUSED_FMA", f64::from(u8::from(fused_fma))),
                ("VALUE_CLIP", bit(SHAPE_VALUE_CLIP)),
                ("AMSGRAD", bit(SHAPE_AMSGRAD)),
                ("LERP_HIGH", bit(SHAPE_LERP_HIGH)),
                ("MOMENTUM", bit(SHAPE_MOMENTUM)),
                ("NESTEROV", bit(SHAPE_NESTEROV)),
                ("CENTERED", bit(SHAPE_CENTERED)),
                ("GROUP_GATHER", bit(SHAPE_GROUP_GATHER)),
            ];
        }
        if !self.kernel.norm_specialized() {
            return Vec::new();
        }
        let mut out = vec![("NORM_KIND", f64::from(self.norm_kind))];
        if self.kernel.zero_nans_specialized() {
            out.push(("ZERO_NANS", f64::from(u8::from(self.zero_nans))));
        }
        out
    }

    /// Every variant of `kernel`, in the order [`PipelineKey::variant`] indexes.
    pub(crate) fn variants(kernel: Kernel) -> Vec<PipelineKey> {
        if kernel.shape_specialized() {
            return (0..=SHAPE_ALL).map(|shape| kernel.shaped(shape)).collect();
        }
        if !kernel.norm_specialized() {
            return vec![kernel.into()];
        }
        let zeros: &[bool] = if kernel.zero_nans_specialized() {
            &[false, true]
        } else {
            &[false]
        };
        zeros
            .iter()
            .flat_map(|&z| {
                NORM_KINDS
                    .iter()
                    .map(move |&k| kernel.for_norm(k).zeroing_nans(z))
            })
            .collect()
    }

    /// This key's position in [`PipelineKey::variants`] of its kernel.
    pub(crate) fn variant(self) -> usize {
        if self.kernel.shape_specialized() {
            return self.shape as usize;
        }
        if !self.kernel.norm_specialized() {
            return 0;
        }
        self.norm_kind as usize + NORM_KINDS.len() * usize::from(self.zero_nans)
    }

    /// How many variants `kernel` has.
    pub(crate) fn variant_count(kernel: Kernel) -> usize {
        if kernel.shape_specialized() {
            return SHAPE_ALL as usize + 1;
        }
        if !kernel.norm_specialized() {
            return 1;
        }
        NORM_KINDS.len() * if kernel.zero_nans_specialized() { 2 } else { 1 }
    }
}

impl From<Kernel> for PipelineKey {
    fn from(kernel: Kernel) -> Self {
        kernel.for_norm(0)
    }
}

/// Every `NORM_*` code, in code order: the `NORM_KIND` values a specialized kernel is built for.
pub(crate) const NORM_KINDS: [u32; 4] = [
    crate::abi::NORM_L1,
    crate::abi::NORM_L2,
    crate::abi::NORM_INF,
    crate::abi::NORM_P,
];

/// The `(field name, offset)` list and size naga lays out for WGSL struct `name` in
/// `source`, for the Rust↔WGSL layout test (`src/kernels/mod.rs`).
#[cfg(test)]
pub(crate) fn struct_layout(source: &str, name: &str) -> Option<(Vec<(String, usize)>, usize)> {
    let module = wgpu::naga::front::wgsl::parse_str(source).ok()?;
    let ty = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))?
        .1;
    let wgpu::naga::TypeInner::Struct { members, span } = &ty.inner else {
        return None;
    };
    let fields = members
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
        .collect();
    Some((fields, *span as usize))
}

/// The runtime checks wgpu compiles into clipstep's shaders: all of wgpu's defaults (bounds
/// checks on every buffer access among them) but `force_loop_bounding`, the counter naga
/// adds to every loop so that a loop the driver may assume finite is made finite. Every
/// loop in clipstep's shaders has a bounded trip count, and the counter costs: on lavapipe
/// it is a 64-bit decrement and a masked exit per iteration of every SIMD batch (the norm
/// at 16M elements 10.0–10.2 → 9.8–9.9 ms; SGD, RMSprop, Adagrad and AdamW steps 3–10%).
pub const SHADER_RUNTIME_CHECKS: wgpu::ShaderRuntimeChecks = wgpu::ShaderRuntimeChecks {
    force_loop_bounding: false,
    ..wgpu::ShaderRuntimeChecks::checked()
};

/// A shader module from `wgsl` compiled with [`SHADER_RUNTIME_CHECKS`]: every kernel, the
/// device probes, and the benchmark's copy roofline (so the roofline pays what the kernels
/// pay). Only for clipstep's own sources, whose loops all terminate.
pub(crate) fn shader_module(device: &wgpu::Device, label: &str, wgsl: &str) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(wgsl.into()),
    };
    // SAFETY: the only check left out is loop bounding, which `create_shader_module_trusted`
    // requires be safe to drop: no loop in the given source runs forever. Every caller
    // passes clipstep's own WGSL, whose loops all have bounded trip counts.
    unsafe { device.create_shader_module_trusted(desc, SHADER_RUNTIME_CHECKS) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::naga;

    /// Every kernel parses and validates with naga, without any device.
    #[test]
    fn every_kernel_validates() {
        for &kernel in Kernel::ALL {
            let src = kernel.source();
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{}: {}", kernel.name(), e.emit_to_string(&src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", kernel.name()));
        }
    }

    /// `Kernel::index` is each kernel's position in `Kernel::ALL`.
    #[test]
    fn kernel_index_is_the_position_in_all() {
        for (i, &kernel) in Kernel::ALL.iter().enumerate() {
            assert_eq!(kernel.index(), i, "{}", kernel.name());
        }
    }

    /// The prelude declares every code the shaders compare against.
    #[test]
    fn the_prelude_declares_every_code() {
        let prelude = prelude();
        for (name, value) in crate::abi::CODES {
            assert!(prelude.contains(&format!("const {name}: u32 = {value}u;")));
        }
    }
}
