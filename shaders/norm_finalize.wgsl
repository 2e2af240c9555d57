// Finalize: one workgroup folds every tensor's sum and writes the step state.
//   source COMPUTED:  tensor_norms[t] = root(tensor_sums[t])                  root: s, sqrt(s), s^(1/p)
//                     total_norm = root(fold_{t: in_norm[t]} tensor_sums[t])
//                                  (the sums are of g / grad_scale already: the partials unscale)
//                                  (NaN if any g of any tensor is NaN, +Inf if any is ±Inf)
//   source GIVEN:     total_norm = given_norm / grad_scale                     (a norm computed elsewhere)
//   source NONE:      total_norm = NaN, nothing flagged
//   clip_coef       = min(1, max_norm / (total_norm + CLIP_EPS)) with max_norm > 0 (NaN if total_norm is NaN), else 1
//   nonfinite       = some g is NaN/±Inf, or total_norm is not finite
//   ZERO_NANS policy: NaN elements counted as 0 by the partials; the norms ignore FLAG_NAN
//   skipped         = nonfinite (under ZERO_NANS: ±Inf or a non-finite total) and policy != PROPAGATE,
//                     or skip_above > 0 and !(total_norm < skip_above)  (a NaN total too)
//   step           += 1 unless skipped (only when count_step; saturates at 2^32 − 1)
//   group_bias[g]   = (1 − β1^step, 1 − β2^step) = −expm1(step · ln β) per group (1 where ln β = 0),
//                     then by the group's schedule kind: NAdam's (1 − μ_t) / (1 − Π_t) and
//                     μ_{t+1} / (1 − Π_t·μ_{t+1}) (nadam_coefficients), or RAdam's
//                     rectification r_t (0 while ρt ≤ 5) and sqrt(1 − β2^t) (radam_coefficients),
//                     or Adafactor's second-moment weight step^beta2_decay
//   inv_grad_scale, clip_value, zero_nans, stochastic, round_seed: from op for the clip and
//                     update kernels; under a loss scaler inv_grad_scale = 1 / state.loss_scale
//   loss scaler (op.scaler): found_inf = nonfinite;
//     found_inf:  growth_tracker = 0;  hysteresis_left = max(hysteresis_left − 1, 0);
//                 loss_scale ·= backoff_factor when hysteresis_left = 0
//     else:       growth_tracker += 1; at growth_interval: growth_tracker = 0,
//                 hysteresis_left = hysteresis, loss_scale ·= growth_factor if that is finite
//     (torch._amp_update_scale_ with hysteresis 1; Megatron's hysteresis tracker)
// The twin of the host finalize in src/host.rs.
//
// @binding(0) tensor_sums  one Partial per tensor (norm_sums.wgsl)
// @binding(1) tensor_norms one f32 per tensor (written)
// @binding(2) state        StepState (read and written)
// @binding(3) op           NormOp (norm_sums.wgsl)
// @binding(4) in_norm      per tensor, 1 when it counts in the total (parameter groups)
// @binding(5) group_schedule per parameter group, a GroupSchedule (from the host, in f64 then
//                          rounded; ln β = 0: no correction)
// @binding(6) group_bias   per parameter group, (bc1, bc2, the schedule's two scalars) (written)

@group(0) @binding(1) var<storage, read_write> tensor_norms: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: StepState;
@group(0) @binding(4) var<storage, read> in_norm: array<u32>;
@group(0) @binding(5) var<storage, read> group_schedule: array<GroupSchedule>;
@group(0) @binding(6) var<storage, read_write> group_bias: array<vec4<f32>>;

// The factor the norms and the update unscale by: 1 / the state's loss scale under a
// scaler (exact for a power of two), else the op's 1 / grad_scale.
fn inv_scale() -> f32 {
    if op.scaler != 0u {
        return 1.0 / state.loss_scale;
    }
    return op.inv_grad_scale;
}

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
    return r;
}

// 1 − β^t from ln β; ln β = 0 (β = 1, which validation forbids) marks a group without
// bias correction.
fn bias_correction(log_beta: f32, t: u32) -> f32 {
    if log_beta == 0.0 {
        return 1.0;
    }
    return one_minus_power(log_beta, t);
}

// NAdam's momentum at step t, μ_t = β1·(1 − 0.5·0.96^(tψ)), from log_decay = ψ·ln 0.96.
fn nadam_mu(beta1: f32, log_decay: f32, t: u32) -> f32 {
    return beta1 * (1.0 - 0.5 * exp(f32(t) * log_decay));
}

// NAdam's update coefficients at step t, with Π_t = μ_1·…·μ_t (PyTorch's mu_product, a
// running f32 product): ((1 − μ_t) / (1 − Π_t), μ_{t+1} / (1 − Π_t·μ_{t+1})). Π_t is
// recomputed from t, so it needs no state of its own and resumes from the step count
// alone; the product stops once below 2^-25, where 1 − Π is 1 in f32 (after ~25
// factors for β1 ≤ 0.999 and the default ψ: the early μ are about β1/2).
fn nadam_coefficients(beta1: f32, log_decay: f32, t: u32) -> vec2<f32> {
    var product = 1.0;
    for (var i = 1u; i <= t && product >= 0x1p-25f; i++) {
        product = product * nadam_mu(beta1, log_decay, i);
    }
    let mu = nadam_mu(beta1, log_decay, t);
    let mu_next = nadam_mu(beta1, log_decay, t + 1u);
    return vec2<f32>((1.0 - mu) / (1.0 - product), mu_next / (1.0 - product * mu_next));
}

// RAdam's ρt = ρ∞ − 2t·β2^t / (1 − β2^t), ρ∞ = 2 / (1 − β2) − 1, from L = −ln β2 > 0,
// without cancellation. With x = tL, 2t·β2^t / (1 − β2^t) = (2/L)·x/expm1(x), and
// x/expm1(x) = 1 − x/2 + x²/12 − x⁴/720 + x⁶/30240 − x⁸/1209600 (Bernoulli), while
// 2/(1 − β2) = (2/L)·L/(1 − e^(−L)) = (2/L)·(1 + L/2 + L²/12 − L⁴/720 + L⁶/30240 − …):
// the 2/L terms cancel exactly, leaving for x < 0.5
//   ρt = (L/6 − L³/360 + L⁵/15120 − L⁷/604800) + t·(1 − x/6 + x³/360 − x⁵/15120 + x⁷/604800)
// (L ≤ x); beyond it the plain formula, which loses under 2 bits there.
fn radam_rho(neg_log_beta2: f32, t: u32) -> f32 {
    let tf = f32(t);
    let l = neg_log_beta2;
    let x = tf * l;
    if x < 0.5 {
        let l2 = l * l;
        let x2 = x * x;
        let offset = l * (1.0 / 6.0 - l2 * (1.0 / 360.0 - l2 * (1.0 / 15120.0 - l2 / 604800.0)));
        let shrink = x * (1.0 / 6.0 - x2 * (1.0 / 360.0 - x2 * (1.0 / 15120.0 - x2 / 604800.0)));
        return offset + tf * (1.0 - shrink);
    }
    let one_minus_beta2 = one_minus_power(-l, 1u);
    return (2.0 / one_minus_beta2 - 1.0) - 2.0 * tf / (exp(x) - 1.0);
}

// RAdam's (r_t, sqrt(1 − β2^t)) at step t: r_t = sqrt((ρt − 4)(ρt − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρt))
// when ρt > 5, else 0 (the plain momentum step).
fn radam_coefficients(log_beta2: f32, bc2: f32, t: u32) -> vec2<f32> {
    let rho = radam_rho(-log_beta2, t);
    let rho_inf = 2.0 / one_minus_power(log_beta2, 1u) - 1.0;
    var rect = 0.0;
    if rho_inf > 5.0 && rho > 5.0 {
        rect = sqrt(((rho - 4.0) * (rho - 2.0) * rho_inf) / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho));
    }
    return vec2<f32>(rect, sqrt(bc2));
}

// The flags a norm is taken with: under ZERO_NANS a NaN counted as 0, not as NaN.
fn counted(flags: u32) -> u32 {
    return select(flags, flags & ~FLAG_NAN, op.policy == POLICY_ZERO_NANS);
}

// The dynamic loss scale after a step whose gradients were (found_inf) or were not
// finite: the twin of reference::loss_scale::update.
fn update_scale(st: ptr<function, StepState>) {
    if (*st).nonfinite != 0u {
        (*st).growth_tracker = 0u;
        (*st).hysteresis_left = select(0u, (*st).hysteresis_left - 1u, (*st).hysteresis_left > 0u);
        if (*st).hysteresis_left == 0u {
            (*st).loss_scale = (*st).loss_scale * op.backoff_factor;
        }
        return;
    }
    let successful = (*st).growth_tracker + 1u;
    if successful >= op.growth_interval {
        let grown = (*st).loss_scale * op.growth_factor;
        if is_finite(grown) {
            (*st).loss_scale = grown;
        }
        (*st).growth_tracker = 0u;
        (*st).hysteresis_left = op.hysteresis;
    } else {
        (*st).growth_tracker = successful;
    }
}

// The finalize's one workgroup (every invocation calls it: it has barriers).
fn finalize(lid: u32) {
    var acc = 0.0;
    var bad = 0u;
    if op.source == SOURCE_COMPUTED {
        for (var t = lid; t < op.num_tensors; t += WORKGROUP_SIZE) {
            let part = tensor_sums[t];
            tensor_norms[t] = root(part.value, counted(part.flags));
            if in_norm[t] != 0u {
                acc = combine(acc, part.value);
            }
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
    // What blocks the step under a skipping policy: every NaN/Inf, or under ZERO_NANS ±Inf.
    var blocking = false;
    if op.source == SOURCE_COMPUTED {
        total = root(all.value, counted(all.flags));
        st.nonfinite = select(0u, 1u, all.flags != 0u || !is_finite(total));
        blocking = counted(all.flags) != 0u || !is_finite(total);
    } else if op.source == SOURCE_GIVEN {
        total = op.given_norm * inv_scale();
        st.nonfinite = select(0u, 1u, !is_finite(total));
        blocking = st.nonfinite != 0u;
    }
    st.total_norm = total;
    st.clip_coef = 1.0;
    if op.source != SOURCE_NONE && op.max_norm > 0.0 {
        st.clip_coef = clip_coef(total, op.max_norm);
    }
    st.inv_grad_scale = inv_scale();
    st.stochastic = op.stochastic;
    st.round_seed = op.round_seed;
    st.clip_value = op.clip_value;
    st.zero_nans = select(0u, 1u, op.policy == POLICY_ZERO_NANS);
    let too_large = op.skip_above > 0.0 && !(total < op.skip_above);
    st.skipped = select(0u, 1u, (blocking && op.policy != POLICY_PROPAGATE) || too_large);
    if op.count_step != 0u && st.skipped == 0u && st.step != 0xffffffffu {
        st.step += 1u;
    }
    if op.scaler != 0u {
        update_scale(&st);
    }
    for (var g = 0u; g < op.num_groups; g++) {
        let schedule = group_schedule[g];
        let bc1 = bias_correction(schedule.log_beta1, st.step);
        let bc2 = bias_correction(schedule.log_beta2, st.step);
        var more = vec2<f32>(0.0);
        if schedule.kind == SCHEDULE_NADAM {
            more = nadam_coefficients(schedule.beta1, schedule.log_momentum_decay, st.step);
        } else if schedule.kind == SCHEDULE_RADAM {
            more = radam_coefficients(schedule.log_beta2, bc2, st.step);
        } else if schedule.kind == SCHEDULE_ADAFACTOR {
            // PyTorch's one_minus_beta2_t = t^beta2_decay (f32 here, a Python float there).
            more = vec2<f32>(pow(f32(st.step), schedule.exponent), 0.0);
        }
        group_bias[g] = vec4<f32>(bc1, bc2, more);
    }
    state = st;
}
