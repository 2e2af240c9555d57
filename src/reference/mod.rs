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
//! | `sgd`, `adam`, `rmsprop`                | [`sgd`], [`adam`], [`rmsprop`]         |
//! | `adagrad`, `lion`, a rule's own file    | [`adagrad`], [`lion`]: `src/reference/rules/<rule>.rs` |
//! | `lars*`, `lamb*`, `trust_fold`          | [`lars`], [`lamb`], [`trust_ratio`]    |
//! | `half.wgsl`, `bf16.wgsl`, `f16.wgsl`    | [`f32_to_bf16`], [`f32_to_f16`], [`f32_to_bf16_stochastic`], [`rounding_bits`] |
//! | the loss scaler in `norm_finalize`      | [`update_scale`]                       |

mod agc;
mod clip;
#[cfg(test)]
pub(crate) mod golden;
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
pub use norm::{global_norm, per_tensor_norms, power_sum, root, PowerSum};
pub use optim::{adam, bias_correction, rmsprop, sgd, signed_decayed, torch_lerp};
pub use precision::{
    bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_bf16_stochastic, f32_to_f16, pcg_hash,
    rounding_bits, update_scale, ScaleState,
};
pub use rules::*;
pub use trust::{lamb, lars, trust_ratio};

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
