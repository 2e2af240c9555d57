// Finalize: one workgroup folds every tensor's sum and writes the step state.
//   source COMPUTED:  tensor_norms[t] = root(tensor_sums[t]) / grad_scale     root: s, sqrt(s), s^(1/p)
//                     total_norm = root(fold_t tensor_sums[t]) / grad_scale   (NaN if any g is NaN, +Inf if any is ±Inf)
//   source GIVEN:     total_norm = given_norm / grad_scale                     (a norm computed elsewhere)
//   source NONE:      total_norm = NaN, nothing flagged
//   clip_coef       = min(1, max_norm / (total_norm + CLIP_EPS)) with max_norm > 0 (NaN if total_norm is NaN), else 1
//   nonfinite       = some g is NaN/±Inf, or total_norm is not finite
//   skipped         = nonfinite and policy != PROPAGATE
//   step           += 1 unless skipped (only when count_step; saturates at 2^32 − 1)
//   bias_correction_k = 1 − β_k^step = −expm1(step · ln β_k)   (ln β_k from the host, in f64)
//   inv_grad_scale, clip_value: copied from op for the update
// The twin of the host finalize in src/host.rs.
//
// @binding(0) tensor_sums  one Partial per tensor
// @binding(1) tensor_norms one f32 per tensor (written)
// @binding(2) state        StepState (read and written)
// @binding(3) op           NormOp

@group(0) @binding(0) var<storage, read> tensor_sums: array<Partial>;
@group(0) @binding(1) var<storage, read_write> tensor_norms: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: StepState;
@group(0) @binding(3) var<uniform> op: NormOp;

fn root(s: f32, bad: u32) -> f32 {
    if (bad & FLAG_NAN) != 0u {
        return f32_nan(bad);
    }
    if (bad & FLAG_INF) != 0u {
        return f32_inf(bad);
    }
    var r = s;
    if NORM_KIND == NORM_L2 {
        r = sqrt(s);
    } else if NORM_KIND == NORM_P && s > 0.0 {
        r = pow(s, 1.0 / op.p);
    }
    return r * op.inv_grad_scale;
}

// 1 − β^t as −expm1(t · ln β). 1 − pow(β, t) would cancel catastrophically
// (1 − 0.999 keeps three digits of a pow accurate to a few ulp); a Taylor series keeps
// small arguments to a few ulp, and exp is accurate where the result is not small.
fn one_minus_power(log_beta: f32, t: u32) -> f32 {
    if t == 0u {
        return 0.0;
    }
    let y = f32(t) * log_beta;
    if y < -0.5 {
        return 1.0 - exp(y);
    }
    var sum = 1.0;
    for (var k = 9.0; k >= 2.0; k -= 1.0) {
        sum = 1.0 + sum * y / k;
    }
    return -(y * sum);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    var bad = 0u;
    if op.source == SOURCE_COMPUTED {
        for (var t = lid; t < op.num_tensors; t += WORKGROUP_SIZE) {
            let part = tensor_sums[t];
            tensor_norms[t] = root(part.value, part.flags);
            acc = combine(acc, part.value);
            bad |= part.flags;
        }
    }
    let all = tree_reduce(lid, Partial(acc, bad), WORKGROUP_SIZE);
    if lid != 0u {
        return;
    }
    var st = state;
    var total = f32_nan(lid);
    st.nonfinite = 0u;
    if op.source == SOURCE_COMPUTED {
        total = root(all.value, all.flags);
        st.nonfinite = select(0u, 1u, all.flags != 0u || !is_finite(total));
    } else if op.source == SOURCE_GIVEN {
        total = op.given_norm * op.inv_grad_scale;
        st.nonfinite = select(0u, 1u, !is_finite(total));
    }
    st.total_norm = total;
    st.clip_coef = 1.0;
    if op.source != SOURCE_NONE && op.max_norm > 0.0 {
        st.clip_coef = clip_coef(total, op.max_norm);
    }
    st.inv_grad_scale = op.inv_grad_scale;
    st.clip_value = op.clip_value;
    st.skipped = select(0u, 1u, st.nonfinite != 0u && op.policy != POLICY_PROPAGATE);
    if op.count_step != 0u && st.skipped == 0u && st.step != 0xffffffffu {
        st.step += 1u;
    }
    st.bias_correction1 = 1.0;
    st.bias_correction2 = 1.0;
    if op.bias_correction != 0u {
        st.bias_correction1 = one_minus_power(op.log_beta1, st.step);
        st.bias_correction2 = one_minus_power(op.log_beta2, st.step);
    }
    state = st;
}
