//! The CPU backend: what a [`crate::Context`] without a GPU adapter runs, composed from the
//! reference math. [`finalize`] is the twin of `shaders/norm_finalize.wgsl` and reads the
//! same [`NormOp`] the device would.

use crate::abi::{
    DeviceStepState, NormOp, NORM_INF, NORM_L1, NORM_L2, POLICY_PROPAGATE, SOURCE_COMPUTED,
    SOURCE_GIVEN, SOURCE_NONE,
};
use crate::layout::Layout;
use crate::reference::{self, PowerSum};

/// PyTorch's `norm_type` of `op.kind`: 1, 2, ∞ or `op.p`.
fn norm_type(op: &NormOp) -> f32 {
    match op.kind {
        NORM_L1 => 1.0,
        NORM_L2 => 2.0,
        NORM_INF => f32::INFINITY,
        _ => op.p,
    }
}

/// The total power sum of a set's gradients and the per-tensor norms of
/// `g · op.inv_grad_scale` (the twin of the partials, fold and per-tensor roots). Tensors
/// with `in_norm[t] == 0` count only their NaN/Inf flags in the total (`None`: all count).
pub(crate) fn norm(
    layout: &Layout,
    grads: &[f32],
    op: &NormOp,
    in_norm: Option<&[u32]>,
) -> (PowerSum, Vec<f32>) {
    let p = norm_type(op);
    let mut total = PowerSum::default();
    let mut per_tensor = Vec::with_capacity(layout.tensors.len());
    for (i, t) in layout.tensors.iter().enumerate() {
        let sum = reference::power_sum(&grads[t.offset as usize..(t.offset + t.numel) as usize], p);
        per_tensor.push(reference::root(sum, p) as f32 * op.inv_grad_scale);
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

/// The next step state from the previous one, `op`, and the power sum when the norm was
/// computed (`op.source == SOURCE_COMPUTED`).
pub(crate) fn finalize(
    prev: &DeviceStepState,
    op: &NormOp,
    sum: Option<PowerSum>,
) -> DeviceStepState {
    let (total_norm, nonfinite) = match (op.source, sum) {
        (SOURCE_COMPUTED, Some(sum)) => {
            let total = reference::root(sum, norm_type(op)) as f32 * op.inv_grad_scale;
            (total, sum.nonfinite() || !total.is_finite())
        }
        (SOURCE_GIVEN, _) => {
            let total = op.given_norm * op.inv_grad_scale;
            (total, !total.is_finite())
        }
        _ => (f32::NAN, false),
    };
    let clip_coef = if op.source != SOURCE_NONE && op.max_norm > 0.0 {
        reference::clip_coef(total_norm, op.max_norm)
    } else {
        1.0
    };
    let skipped = nonfinite && op.policy != POLICY_PROPAGATE;
    let step = prev
        .step
        .saturating_add(u32::from(op.count_step != 0 && !skipped));
    DeviceStepState {
        total_norm,
        clip_coef,
        inv_grad_scale: op.inv_grad_scale,
        clip_value: op.clip_value,
        nonfinite: u32::from(nonfinite),
        skipped: u32::from(skipped),
        step,
    }
}

/// The gradients an update applies: `reference::effective_grad` of each, from the state.
pub(crate) fn effective_grads(grads: &[f32], state: &DeviceStepState) -> Vec<f32> {
    let clip_value = (state.clip_value > 0.0).then_some(state.clip_value);
    grads
        .iter()
        .map(|&g| reference::effective_grad(g, state.inv_grad_scale, state.clip_coef, clip_value))
        .collect()
}
