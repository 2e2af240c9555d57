//! The CPU backend: what a [`crate::Context`] without a GPU adapter runs, composed from the
//! reference math. [`finalize`] is the twin of `shaders/norm_finalize.wgsl` and reads the
//! same [`NormOp`] the device would.

use crate::dtype::Dtype;
use crate::kernels::abi::{
    DeviceStepState, NormOp, FLAG_INF, FLAG_NAN, NORM_INF, NORM_L1, NORM_L2, POLICY_PROPAGATE,
    POLICY_ZERO_NANS, SOURCE_COMPUTED, SOURCE_GIVEN, SOURCE_NONE,
};
use crate::reference::{self, PowerSum, ScaleState};
use crate::storage::layout::Layout;

/// PyTorch's `norm_type` of `op.kind`: 1, 2, ∞ or `op.p`.
fn norm_type(op: &NormOp) -> f32 {
    match op.kind {
        NORM_L1 => 1.0,
        NORM_L2 => 2.0,
        NORM_INF => f32::INFINITY,
        _ => op.p,
    }
}

/// Whether `op` counts NaN gradients as 0 (`Nonfinite::ZeroNans`).
fn zeroes_nans(op: &NormOp) -> bool {
    op.policy == POLICY_ZERO_NANS
}

/// The power sum of `g` under `op`: NaN elements add 0 under ZeroNans but still set
/// `has_nan` (the twin of the partials' `ZERO_NANS` variant).
fn power_sum(g: &[f32], p: f32, op: &NormOp) -> PowerSum {
    if !zeroes_nans(op) || !g.iter().any(|x| x.is_nan()) {
        return reference::power_sum(g, p);
    }
    let zeroed: Vec<f32> = g
        .iter()
        .map(|&x| if x.is_nan() { 0.0 } else { x })
        .collect();
    PowerSum {
        has_nan: true,
        ..reference::power_sum(&zeroed, p)
    }
}

/// `sum` as a norm is taken under `op`: a NaN counted as 0 is no NaN (the finalize's `counted`).
fn counted(sum: PowerSum, op: &NormOp) -> PowerSum {
    PowerSum {
        has_nan: sum.has_nan && !zeroes_nans(op),
        ..sum
    }
}

/// The total power sum of a set's gradients and the per-tensor norms of
/// `g · s` (`s`: [`inv_scale`]; the twin of the partials, fold and per-tensor roots; the sums
/// are of the scaled `g`, in f64, which neither overflows nor underflows where the
/// device's f32 sums of the unscaled `g · s` do not). Tensors with `in_norm[t] == 0` count
/// only their NaN/Inf flags in the total (`None`: all count).
pub(crate) fn norm(
    layout: &Layout, grads: &[f32], op: &NormOp, prev: &DeviceStepState, in_norm: Option<&[u32]>,
) -> (PowerSum, Vec<f32>) {
    let inv_scale = f64::from(inv_scale(prev, op));
    let p = norm_type(op);
    let mut total = PowerSum::default();
    let mut per_tensor = Vec::with_capacity(layout.tensors.len());
    for (i, t) in layout.tensors.iter().enumerate() {
        let sum = power_sum(
            &grads[t.offset as usize..(t.offset + t.numel) as usize],
            p,
            op,
        );
        let root = reference::root(counted(sum, op), p);
        per_tensor.push((root * inv_scale) as f32);
        let counted = in_norm.is_none_or(|m| m[i] != 0);
        let sum = if counted {
            sum
        } else {
            PowerSum { value: 0.0, ..sum }
        };
        total = total.combine(sum, p);
    }
    (total, per_tensor)
}

/// Each tensor's power sum `Σ|g|^p` (max for L∞) under `op`, rounded to f32 as the
/// device's per-tensor fold holds it, with its `FLAG_*` bits (the sharded norm's phase 1).
pub(crate) fn tensor_sums(layout: &Layout, grads: &[f32], op: &NormOp) -> Vec<(f32, u32)> {
    let p = norm_type(op);
    layout
        .tensors
        .iter()
        .map(|t| {
            let sum = power_sum(
                &grads[t.offset as usize..(t.offset + t.numel) as usize],
                p,
                op,
            );
            let nan = if sum.has_nan { FLAG_NAN } else { 0 };
            let flags = nan | if sum.has_inf { FLAG_INF } else { 0 };
            (sum.value as f32, flags)
        })
        .collect()
}

/// The factor that unscales the gradients: 1 / the loss scale under a scaler, else
/// `op.inv_grad_scale` (`inv_scale` and `unscale` in the shaders).
fn inv_scale(prev: &DeviceStepState, op: &NormOp) -> f32 {
    if op.scaler != 0 {
        1.0 / prev.loss_scale
    } else {
        op.inv_grad_scale
    }
}

/// The next step state from the previous one, `op`, and the power sum when the norm was
/// computed (`op.source == SOURCE_COMPUTED`).
pub(crate) fn finalize(
    prev: &DeviceStepState, op: &NormOp, sum: Option<PowerSum>,
) -> DeviceStepState {
    let inv_scale = inv_scale(prev, op);
    // `blocking`: what skips the step under a skipping policy (under ZeroNans, ±Inf only).
    let (total_norm, nonfinite, blocking) = match (op.source, sum) {
        (SOURCE_COMPUTED, Some(sum)) => {
            let kept = counted(sum, op);
            // Unscaled in f64, then rounded: the scaled norm may pass f32's range where
            // the unscaled one does not (the device unscales each element first).
            let total = (reference::root(kept, norm_type(op)) * f64::from(inv_scale)) as f32;
            let overflow = !total.is_finite();
            (
                total,
                sum.nonfinite() || overflow,
                kept.nonfinite() || overflow,
            )
        }
        (SOURCE_GIVEN, _) => {
            let total = op.given_norm * inv_scale;
            (total, !total.is_finite(), !total.is_finite())
        }
        _ => (f32::NAN, false, false),
    };
    let clip_coef = if op.source != SOURCE_NONE && op.max_norm > 0.0 {
        reference::clip_coef(total_norm, op.max_norm)
    } else {
        1.0
    };
    // Optax's skip_large_updates: `!(norm < bound)`, so a NaN norm skips too.
    let below = total_norm.partial_cmp(&op.skip_above) == Some(std::cmp::Ordering::Less);
    let too_large = op.skip_above > 0.0 && !below;
    let skipped = (blocking && op.policy != POLICY_PROPAGATE) || too_large;
    let step = prev
        .step
        .saturating_add(u32::from(op.count_step != 0 && !skipped));
    let mut scale = ScaleState {
        scale: prev.loss_scale,
        growth_tracker: prev.growth_tracker,
        hysteresis_left: prev.hysteresis_left,
    };
    if op.scaler != 0 {
        scale = reference::update_scale(
            scale,
            nonfinite,
            op.growth_factor,
            op.backoff_factor,
            op.growth_interval,
            op.hysteresis,
        );
    }
    DeviceStepState {
        total_norm,
        clip_coef,
        inv_grad_scale: inv_scale,
        clip_value: op.clip_value,
        nonfinite: u32::from(nonfinite),
        skipped: u32::from(skipped),
        step,
        zero_nans: u32::from(zeroes_nans(op)),
        exact_zero: 0,
        loss_scale: scale.scale,
        growth_tracker: scale.growth_tracker,
        hysteresis_left: scale.hysteresis_left,
        stochastic: op.stochastic,
        round_seed: op.round_seed,
    }
}

/// `g`, or 0 for a NaN under the ZeroNans policy (the twin of `zero_nans_if`).
pub(crate) fn zero_nan(g: f32, state: &DeviceStepState) -> f32 {
    if state.zero_nans != 0 && g.is_nan() {
        0.0
    } else {
        g
    }
}

/// The gradients an update applies: `reference::effective_grad` of each (a NaN read as 0
/// under ZeroNans), from the state.
pub(crate) fn effective_grads(grads: &[f32], state: &DeviceStepState) -> Vec<f32> {
    let clip_value = (state.clip_value > 0.0).then_some(state.clip_value);
    grads
        .iter()
        .map(|&g| {
            let g = zero_nan(g, state);
            reference::effective_grad(g, state.inv_grad_scale, state.clip_coef, clip_value)
        })
        .collect()
}

/// `values` (of 16-bit tensor elements `base`, `base + 1`, ... in the virtual space)
/// rounded to `dtype` and widened again, in place: to nearest even, or with
/// `stochastic = Some((seed, step))` stochastically with `reference::rounding_bits` (bf16):
/// the twin of `round_param` (`shaders/round_param.wgsl`) and of bf16 states' writes.
pub(crate) fn round16(values: &mut [f32], dtype: Dtype, stochastic: Option<(u32, u32)>, base: u64) {
    for (i, v) in values.iter_mut().enumerate() {
        let bits = match stochastic {
            Some((seed, step)) if dtype == Dtype::Bf16 => {
                let e = (base + i as u64) as u32;
                reference::f32_to_bf16_stochastic(*v, reference::rounding_bits(seed, step, e))
            }
            _ => dtype.round(*v),
        };
        *v = dtype.widen(bits);
    }
}
