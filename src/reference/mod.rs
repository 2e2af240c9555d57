//! The CPU reference: plain Rust on plain slices and plain numbers, mirroring each shader
//! line by line, norms accumulated in f64. It defines correctness (every GPU result is
//! tested against it) and is itself held to golden fixtures generated from PyTorch
//! (`scripts/make_fixtures.py` → `fixtures/pytorch.json`). It depends on no other type of
//! the crate: norm orders are PyTorch's `norm_type` floats (`f32::INFINITY` for the max
//! norm), hyperparameters are PyTorch's keyword arguments, in its order.
//!
//! | shader                                  | reference                              |
//! |-----------------------------------------|----------------------------------------|
//! | `norm_partials` + `norm_tensors`        | [`power_sum`], [`PowerSum::combine`]    |
//! | `norm_finalize`                         | [`root`], [`clip_coef`], [`bias_correction`] |
//! | `scale` (clip by norm)                  | [`clip_grads_with_norm`]               |
//! | `scale_per_tensor`                      | [`clip_grad_norm_per_tensor`], [`clip_by_block_rms`] |
//! | `clamp` (clip by value)                 | [`clip_grad_value`]                    |
//! | `agc` (adaptive clip)                   | [`adaptive_clip`], [`units_of`]        |
//! | `effective_grad` (`common.wgsl`)        | [`effective_grad`]                     |
//! | `signed_decayed` (`common.wgsl`)        | [`signed_decayed`]                     |
//! | `adam_moments` (`update.wgsl`)          | [`adam_decay`], [`adam_moments`]       |
//! | `nadam_coefficients`, `radam_coefficients` (`norm_finalize`) | [`nadam_coefficients`], [`radam_rectification`] |
//! | `sgd`, `adam`, `rmsprop`                | [`sgd`], [`adam`], [`rmsprop`]         |
//! | `adagrad`, `lion`, a rule's own file    | [`adagrad`], [`lion`]: `src/reference/rules/<rule>.rs` |
//! | `lars*`, `lamb*`, `trust_fold`          | [`lars`], [`lamb`], [`trust_ratio`]    |
//! | `half.wgsl`, `bf16.wgsl`, `f16.wgsl`    | [`f32_to_bf16`], [`f32_to_f16`], [`f32_to_bf16_stochastic`], [`rounding_bits`] |
//! | the loss scaler in `norm_finalize`      | [`update_scale`]                       |

mod agc;
mod clip;
mod dynamic_maps;
#[cfg(test)]
pub(crate) mod golden;
mod matmul;
mod norm;
mod optim;
mod precision;
mod rules;
mod trust;

pub use agc::{adaptive_clip, units_of, Unit, Units};
pub use clip::{
    block_rms_coef, clamp_keep_nan, clip_by_block_rms, clip_coef, clip_grad_norm,
    clip_grad_norm_per_tensor, clip_grad_value, clip_grads_with_norm, effective_grad,
};
pub use matmul::{gemm, gemm_tolerance, round_bf16, Gemm, GEMM_PASS_DEPTH};
pub use norm::{global_norm, per_tensor_norms, power_sum, root, PowerSum};
pub use optim::{
    adam, adam_decay, adam_moments, bias_correction, rmsprop, sgd, signed_decayed, torch_lerp,
};
pub use precision::{
    bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_bf16_stochastic, f32_to_f16, pcg_hash,
    rounding_bits, update_scale, ScaleState,
};
pub use rules::*;
pub use trust::{lamb, lars, trust_ratio};

/// One tensor's step of an update rule's reference: its parameters, its (clipped, unscaled)
/// gradients, and its states by slot (`None`: a slot the rule's config leaves unused), each
/// a plain slice of one tensor's elements. Every rule's reference takes one, then its
/// hyperparameters in PyTorch's order.
pub struct TensorStep<'a> {
    /// The parameters, updated in place.
    pub params: &'a mut [f32],
    /// The gradients the rule applies.
    pub grads: &'a [f32],
    /// The tensor's shape; empty: a vector of `params.len()` elements. Only a rule that
    /// treats matrices apart (Adafactor's factored second moment) reads it.
    pub shape: &'a [usize],
    /// The states by slot, updated in place.
    pub states: [Option<&'a mut [f32]>; 3],
}

impl<'a> TensorStep<'a> {
    /// The parameters, the gradients and the states of slots `0..N`, which `rule` always
    /// keeps.
    ///
    /// # Panics
    ///
    /// When one of those slots is `None` (the optimizer binds every state its rule keeps).
    pub fn kept<const N: usize>(
        self, rule: &str,
    ) -> (&'a mut [f32], &'a [f32], [&'a mut [f32]; N]) {
        let mut slots = self.states.into_iter();
        let states = std::array::from_fn(|slot| {
            let state = slots.next().flatten();
            state.unwrap_or_else(|| panic!("{rule} keeps state slot {slot}"))
        });
        (self.params, self.grads, states)
    }
}

/// Units in the last place between two finite f32s of any signs: the distance the update
/// tolerance (`consts::tolerance::UPDATE_ULPS`) is stated in.
pub fn ulps(a: f32, b: f32) -> u32 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i32::MIN - i
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}
