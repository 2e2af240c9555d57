//! `clipstep verify`: every kernel on one adapter against the CPU reference, over a
//! matrix of sizes and tensor counts.

use crate::consts::tolerance::{NORM_REL, P_NORM_REL, TRAJECTORY_REL};
use crate::error::Result;
use crate::optim::{Fused, Optimizer, UpdateRule};
use crate::{
    reference, AdamConfig, AdamWConfig, ArenaOptions, Clip, Context, Norm, ParamSet, RmsPropConfig,
    SgdConfig, StepOptions, TensorSpec,
};

/// One line of the verification table.
#[derive(Clone, Debug)]
pub struct Check {
    /// Operation, e.g. `global_norm(L2)`.
    pub op: String,
    /// Case name, e.g. `2000 tiny tensors`.
    pub case: String,
    /// Elements over all tensors.
    pub numel: u64,
    /// Tensors.
    pub tensors: usize,
    /// Slabs.
    pub slabs: usize,
    /// Largest absolute difference from the reference.
    pub max_abs: f64,
    /// Largest relative difference from the reference (`|got − want| / |want|`).
    pub max_rel: f64,
    /// The relative tolerance the check is held to.
    pub tolerance: f64,
    /// Whether it held.
    pub pass: bool,
}

/// A verification case: tensor sizes and a forced slab size.
#[derive(Clone, Debug)]
pub struct Case {
    /// Printed name.
    pub name: String,
    /// Tensor lengths.
    pub sizes: Vec<usize>,
    /// Largest slab in bytes.
    pub max_slab_bytes: Option<u64>,
}

/// The default matrix: one tensor of awkward sizes, 2000 tiny tensors, and a mix spread
/// over several slabs.
pub fn default_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = [1usize, 257, 7919, 1_000_003]
        .iter()
        .map(|&n| Case {
            name: format!("1 tensor of {n}"),
            sizes: vec![n],
            max_slab_bytes: None,
        })
        .collect();
    cases.push(Case {
        name: "2000 tiny tensors".into(),
        sizes: (0..2000).map(|i| 1 + i % 13).collect(),
        max_slab_bytes: None,
    });
    cases.push(Case {
        name: "mix over 64 KiB slabs".into(),
        sizes: vec![40_000, 0, 1, 257, 70_001, 64, 12_345],
        max_slab_bytes: Some(64 * 1024),
    });
    cases
}

/// Deterministic values in `[-scale, scale)` from `seed` (splitmix64).
pub fn sample_data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Splits a concatenation into per-tensor slices of `sizes`.
pub fn split<'a>(all: &'a [f32], sizes: &[usize]) -> Vec<&'a [f32]> {
    let mut at = 0;
    sizes
        .iter()
        .map(|&n| {
            let s = &all[at..at + n];
            at += n;
            s
        })
        .collect()
}

/// Splits a concatenation into mutable per-tensor slices of `sizes`.
pub fn split_mut<'a>(mut all: &'a mut [f32], sizes: &[usize]) -> Vec<&'a mut [f32]> {
    sizes
        .iter()
        .map(|&n| {
            let (head, rest) = std::mem::take(&mut all).split_at_mut(n);
            all = rest;
            head
        })
        .collect()
}

/// Largest absolute and relative differences of `got` from `want` (NaN matching NaN);
/// relative to `max(|want|, floor)`.
pub fn max_errors(got: &[f32], want: &[f32], floor: f64) -> (f64, f64) {
    got.iter()
        .zip(want)
        .fold((0.0f64, 0.0f64), |(abs, rel), (&g, &w)| {
            if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) {
                return (abs, rel);
            }
            let d = (f64::from(g) - f64::from(w)).abs();
            let r = d / f64::from(w).abs().max(floor);
            (
                abs.max(d),
                rel.max(if r.is_nan() { f64::INFINITY } else { r }),
            )
        })
}

/// Specs named `t0`, `t1`, ... with the given lengths.
pub fn specs(sizes: &[usize]) -> Vec<TensorSpec> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| TensorSpec::new(format!("t{i}"), [n]))
        .collect()
}

/// A set of `case` on `ctx` with gradients from `seed`; returns it and the gradients.
pub fn case_set(ctx: &Context, case: &Case, seed: u64) -> Result<(ParamSet, Vec<f32>)> {
    let mut set = ParamSet::new(
        ctx,
        &specs(&case.sizes),
        ArenaOptions {
            max_slab_bytes: case.max_slab_bytes,
            ..Default::default()
        },
    )?;
    let grads = sample_data(case.sizes.iter().sum(), seed, 1.0);
    set.upload_grads(&grads)?;
    Ok((set, grads))
}

fn check(
    op: String,
    case: &Case,
    set: &ParamSet,
    got: &[f32],
    want: &[f32],
    tolerance: f64,
) -> Check {
    check_with_floor(op, case, set, got, want, tolerance, f64::MIN_POSITIVE)
}

fn check_with_floor(
    op: String,
    case: &Case,
    set: &ParamSet,
    got: &[f32],
    want: &[f32],
    tolerance: f64,
    floor: f64,
) -> Check {
    let (max_abs, max_rel) = max_errors(got, want, floor);
    Check {
        op,
        case: case.name.clone(),
        numel: set.numel(),
        tensors: set.tensors().len(),
        slabs: set.num_slabs(),
        max_abs,
        max_rel,
        tolerance,
        pass: max_rel <= tolerance,
    }
}

/// Norm and clip kernels on `ctx` against the reference, for each case.
pub fn verify_norms_and_clips(ctx: &Context, cases: &[Case]) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    for case in cases {
        let (mut set, grads) = case_set(ctx, case, 1)?;
        let tensors = split(&grads, &case.sizes);
        for norm in [Norm::L1, Norm::L2, Norm::Inf, Norm::P(3.0)] {
            let tol = if matches!(norm, Norm::P(_)) {
                P_NORM_REL
            } else {
                NORM_REL
            };
            let report = set.global_norm(norm)?;
            let total = report.read_blocking()?.total_norm;
            let want = reference::global_norm(&tensors, norm);
            out.push(check(
                format!("global_norm({norm:?})"),
                case,
                &set,
                &[total],
                &[want],
                tol,
            ));
            let per_tensor = report.tensor_norms_blocking()?;
            let want = reference::per_tensor_norms(&tensors, norm);
            out.push(check(
                format!("per_tensor_norms({norm:?})"),
                case,
                &set,
                &per_tensor,
                &want,
                tol,
            ));
        }
        let mut want = grads.clone();
        reference::clip_grad_norm(&mut [want.as_mut_slice()], 0.5, Norm::L2);
        set.clip_grad_norm(0.5, Norm::L2)?;
        let got = set.download_grads()?;
        // The coefficient carries the norm's relative error into every element.
        out.push(check(
            "clip_grad_norm(0.5, L2)".into(),
            case,
            &set,
            &got,
            &want,
            2.0 * NORM_REL,
        ));
        reference::clip_grad_value(&mut [want.as_mut_slice()], 0.01);
        set.clip_grad_value(0.01)?;
        let got = set.download_grads()?;
        out.push(check(
            "clip_grad_value(0.01)".into(),
            case,
            &set,
            &got,
            &want,
            2.0 * NORM_REL,
        ));
    }
    Ok(out)
}

/// Parameters after `steps` clipped steps of `config` on `ctx`, from fixed data.
fn run_steps<R: UpdateRule>(
    ctx: &Context,
    case: &Case,
    config: &R,
    steps: u64,
) -> Result<(ParamSet, Vec<f32>)> {
    let (mut set, _) = case_set(ctx, case, 1)?;
    let n = set.numel() as usize;
    set.upload_params(&sample_data(n, 2, 1.0))?;
    let mut opt = Fused::new(&set, config.clone())?;
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        grad_scale: 2.0,
        ..Default::default()
    };
    for step in 0..steps {
        set.upload_grads(&sample_data(n, 10 + step, 1.0))?;
        opt.step(&mut set, &options)?;
    }
    let params = set.download_params()?;
    Ok((set, params))
}

fn verify_rule<R: UpdateRule>(ctx: &Context, case: &Case, config: R) -> Result<Check> {
    const STEPS: u64 = 3;
    let (set, got) = run_steps(ctx, case, &config, STEPS)?;
    let (_, want) = run_steps(&Context::cpu(), case, &config, STEPS)?;
    let op = format!("{} x{STEPS} (clip 1.0, scale 2)", R::NAME);
    // Relative to max(|p|, 1e-2): parameters near zero are compared absolutely.
    Ok(check_with_floor(
        op,
        case,
        &set,
        &got,
        &want,
        f64::from(TRAJECTORY_REL),
        1e-2,
    ))
}

/// Every fused optimizer on `ctx` against the CPU reference backend, for each case.
pub fn verify_optimizers(ctx: &Context, cases: &[Case]) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    for case in cases {
        let sgd = SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            ..Default::default()
        };
        out.push(verify_rule(ctx, case, sgd)?);
        let adam = AdamConfig {
            amsgrad: true,
            weight_decay: 0.01,
            ..Default::default()
        };
        out.push(verify_rule(ctx, case, adam)?);
        out.push(verify_rule(ctx, case, AdamWConfig::default())?);
        let rmsprop = RmsPropConfig {
            centered: true,
            momentum: 0.5,
            ..Default::default()
        };
        out.push(verify_rule(ctx, case, rmsprop)?);
    }
    Ok(out)
}

/// Every check of `clipstep verify` on `ctx`.
pub fn verify(ctx: &Context) -> Result<Vec<Check>> {
    let cases = default_cases();
    let mut out = verify_norms_and_clips(ctx, &cases)?;
    out.extend(verify_optimizers(ctx, &cases)?);
    Ok(out)
}
