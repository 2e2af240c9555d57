//! The verification harness: one case table and one set of checks, every GPU result
//! against the CPU reference. `clipstep verify` prints them; `cargo test` (tests/verify.rs)
//! asserts them, including this file by path; the tests' and examples' data helpers come
//! from here too. Public API only, every tolerance from `clipstep::consts::tolerance`.

use clipstep::consts::tolerance::{
    CLIPPED_REL, NORM_REL, P_NORM_REL, TRAJECTORY_FLOOR, TRAJECTORY_REL,
};
use clipstep::{
    reference, AdamW, AdamWConfig, ArenaOptions, Clip, Context, Dtype, LossScaler, Nonfinite, Norm,
    Optimizer, ParamGroup, ParamSet, RuleConfig, RuleVisitor, SgdConfig, StepOptions, TensorSpec,
    Units,
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
    /// Largest relative difference from the reference (`|got − want| / max(|want|, floor)`).
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

/// The case table: one tensor of awkward sizes (1, a prime past a workgroup, a prime, past
/// a million), 2000 tiny tensors, and a mix spread over several slabs.
pub fn cases() -> Vec<Case> {
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
    if got.len() != want.len() {
        return (f64::INFINITY, f64::INFINITY);
    }
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
    shaped_specs(sizes, false)
}

/// The shape a tensor of `n` elements takes: `[n]`, or for a rule of matrices
/// (`RuleConfig::MATRICES`, Muon) the squarest matrix `[n / d, d]`, `d` the largest divisor
/// of `n` at most `√n` (a prime is a column; `[0, 1]` for none).
pub fn shape_of(n: usize, matrices: bool) -> Vec<usize> {
    if !matrices {
        return vec![n];
    }
    let d = (1..=n.isqrt())
        .rev()
        .find(|d| n.is_multiple_of(*d))
        .unwrap_or(1);
    vec![n / d, d]
}

/// Whether a rule of matrices (`matrices`) has a verify row over `case`: not where a
/// tensor's squarest matrix is a sliver deeper than one product pass
/// (`reference::GEMM_PASS_DEPTH`; the prime 1,000,003 is a column): its Gram product is one
/// workgroup summing every element, minutes on a software driver for 3 steps of 5
/// iterations. `tests/matmul.rs` holds such deep products to the reference.
pub fn has_matrix_row(case: &Case, matrices: bool) -> bool {
    !matrices
        || case.sizes.iter().all(|&n| {
            shape_of(n, true)
                .iter()
                .all(|&side| side <= reference::GEMM_PASS_DEPTH)
        })
}

/// Specs named `t0`, `t1`, ... with the given lengths, shaped by [`shape_of`].
pub fn shaped_specs(sizes: &[usize], matrices: bool) -> Vec<TensorSpec> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| TensorSpec::new(format!("t{i}"), shape_of(n, matrices)))
        .collect()
}

/// A set of `case` on `ctx` with gradients from `seed`; returns it and the gradients.
pub fn case_set(ctx: &Context, case: &Case, seed: u64) -> clipstep::Result<(ParamSet, Vec<f32>)> {
    case_set_shaped(ctx, case, seed, false)
}

/// [`case_set`] with its tensors shaped by [`shape_of`] (`matrices` for a rule of matrices).
pub fn case_set_shaped(
    ctx: &Context, case: &Case, seed: u64, matrices: bool,
) -> clipstep::Result<(ParamSet, Vec<f32>)> {
    let mut set = ParamSet::new(
        ctx,
        &shaped_specs(&case.sizes, matrices),
        ArenaOptions {
            max_slab_bytes: case.max_slab_bytes,
            ..Default::default()
        },
    )?;
    let grads = sample_data(case.sizes.iter().sum(), seed, 1.0);
    set.upload_grads(&grads)?;
    Ok((set, grads))
}

/// The relative tolerance of a norm of type `norm`.
pub fn norm_tolerance(norm: Norm) -> f64 {
    match norm {
        Norm::P(_) => P_NORM_REL,
        _ => NORM_REL,
    }
}

/// A check of `got` against `want`, relative to `max(|want|, floor)`.
fn check(
    op: String, case: &Case, set: &ParamSet, got: &[f32], want: &[f32], tolerance: f64, floor: f64,
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

/// Norms and standalone clips on `ctx` against the reference, for `case`.
pub fn norms_and_clips(ctx: &Context, case: &Case) -> clipstep::Result<Vec<Check>> {
    let tiny = f64::MIN_POSITIVE;
    let mut out = Vec::new();
    let (mut set, grads) = case_set(ctx, case, 1)?;
    let tensors = split(&grads, &case.sizes);
    for norm in [Norm::L1, Norm::L2, Norm::Inf, Norm::P(3.0)] {
        let tol = norm_tolerance(norm);
        let report = set.global_norm(norm)?;
        let total = report.read_blocking()?.total_norm;
        let want = reference::global_norm(&tensors, norm.order());
        out.push(check(
            format!("global_norm({norm:?})"),
            case,
            &set,
            &[total],
            &[want],
            tol,
            tiny,
        ));
        let per_tensor = set.per_tensor_norms(norm)?.tensor_norms_blocking()?;
        let want = reference::per_tensor_norms(&tensors, norm.order());
        out.push(check(
            format!("per_tensor_norms({norm:?})"),
            case,
            &set,
            &per_tensor,
            &want,
            tol,
            tiny,
        ));
    }
    let clipped = |set: &ParamSet, want: &[f32], op: &str| -> clipstep::Result<Check> {
        Ok(check(
            op.into(),
            case,
            set,
            &set.download_grads()?,
            want,
            CLIPPED_REL,
            tiny,
        ))
    };
    // Each clip runs on the previous one's output, on the device and in the reference.
    let mut want = grads.clone();
    reference::clip_grad_norm(&mut split_mut(&mut want, &case.sizes), 0.5, 2.0);
    set.clip_grad_norm(0.5, Norm::L2, Nonfinite::Propagate)?;
    out.push(clipped(&set, &want, "clip_grad_norm(0.5, L2)")?);
    let total = reference::global_norm(&split(&want, &case.sizes), 2.0);
    reference::clip_grads_with_norm(&mut split_mut(&mut want, &case.sizes), 0.25, total);
    set.clip_grads_with_norm(0.25, total, Nonfinite::Propagate)?;
    out.push(clipped(&set, &want, "clip_grads_with_norm(0.25, ‖g‖)")?);
    reference::clip_by_block_rms(&mut split_mut(&mut want, &case.sizes), 1e-4);
    set.clip_by_block_rms(1e-4, Nonfinite::Propagate)?;
    out.push(clipped(&set, &want, "clip_by_block_rms(1e-4)")?);
    // Adaptive clipping against the parameters (zero here: every unit's bound is
    // clipping · eps); each 1-D tensor is one unit. Sets with a tensor spanning slabs do not
    // run it (a typed error that changes nothing).
    match set.clip_adaptive(0.05, 1e-3, Units::Leading) {
        Err(clipstep::Error::NotSupported(_)) => {}
        result => {
            result?;
            let zeros = vec![0.0; want.len()];
            for (t, g) in split_mut(&mut want, &case.sizes).into_iter().enumerate() {
                let p = &zeros[..g.len()];
                reference::adaptive_clip(p, g, &[case.sizes[t]], 0.05, 1e-3, Units::Leading);
            }
            out.push(clipped(&set, &want, "clip_adaptive(0.05, 1e-3)")?);
        }
    }
    reference::clip_grad_norm_per_tensor(&mut split_mut(&mut want, &case.sizes), 0.01, 1.0);
    set.clip_grad_norm_per_tensor(0.01, Norm::L1, Nonfinite::Propagate)?;
    out.push(clipped(&set, &want, "clip_grad_norm_per_tensor(0.01, L1)")?);
    reference::clip_grad_value(&mut split_mut(&mut want, &case.sizes), 1e-4);
    set.clip_grad_value(1e-4)?;
    out.push(clipped(&set, &want, "clip_grad_value(1e-4)")?);
    Ok(out)
}

/// Something that builds an optimizer for a set, so checks can be generic over the
/// optimizers: every rule's config ([`RuleConfig::build`]), and [`ThreeGroups`].
pub trait Build: Clone + std::fmt::Debug {
    /// The optimizer type.
    type Opt: Optimizer;
    /// Whether it steps matrices only (`RuleConfig::MATRICES`): its sets are shaped so.
    const MATRICES: bool = false;
    /// The optimizer over `set`.
    fn make(&self, set: &ParamSet) -> clipstep::Result<Self::Opt>;
}

impl<C: RuleConfig> Build for C {
    type Opt = C::Optimizer;
    const MATRICES: bool = C::MATRICES;
    fn make(&self, set: &ParamSet) -> clipstep::Result<C::Optimizer> {
        self.build(set)
    }
}

/// AdamW in three parameter groups over a set's tensors (tensor i in group i % 3): group 0
/// `config`, group 1 at twice the learning rate without weight decay and out of the global
/// norm, group 2 with other betas and unclipped.
#[derive(Clone, Debug)]
pub struct ThreeGroups(pub AdamWConfig);

impl Build for ThreeGroups {
    type Opt = AdamW;
    fn make(&self, set: &ParamSet) -> clipstep::Result<AdamW> {
        let c = self.0;
        AdamW::with_groups(
            set,
            three_groups(set, |g| match g {
                0 => c,
                1 => AdamWConfig {
                    lr: 2.0 * c.lr,
                    weight_decay: 0.0,
                    ..c
                },
                _ => AdamWConfig {
                    betas: (0.8, 0.99),
                    ..c
                },
            }),
        )
    }
}

/// Three groups of the tensors of `set`, tensor i in group i % 3: group 1 out of the
/// global norm, group 2 unclipped; group g's config is `config(g)`.
pub fn three_groups<C>(set: &ParamSet, config: impl Fn(usize) -> C) -> Vec<ParamGroup<C>> {
    (0..3)
        .map(|g| {
            let member = set
                .tensors()
                .iter()
                .skip(g)
                .step_by(3)
                .map(|t| t.name.clone());
            let group = ParamGroup::new(member, config(g));
            match g {
                1 => group.excluded_from_norm(),
                2 => group.unclipped(),
                _ => group,
            }
        })
        .collect()
}

/// Parameters after `steps` steps of `config` with `options` on `ctx`, from fixed data,
/// and the last step's report.
pub fn run_steps<C: Build>(
    ctx: &Context, case: &Case, config: &C, steps: u64, options: &StepOptions,
) -> clipstep::Result<(ParamSet, Vec<f32>, clipstep::Report)> {
    let (set, _) = case_set_shaped(ctx, case, 1, C::MATRICES)?;
    run_steps_on(set, config, steps, options, Dtype::F32)
}

/// [`run_steps`] on a set already made (its tensors in any slabs: own, pooled, 16-bit),
/// with gradients exact in `grads`: rounded to it (to nearest even) before the upload, so
/// a 16-bit set and an f32 one step on the same values.
pub fn run_steps_on<C: Build>(
    mut set: ParamSet, config: &C, steps: u64, options: &StepOptions, grads: Dtype,
) -> clipstep::Result<(ParamSet, Vec<f32>, clipstep::Report)> {
    let n = set.numel() as usize;
    set.upload_params(&sample_data(n, 2, 1.0))?;
    let mut opt = config.make(&set)?;
    let mut report = None;
    let exact = |g: f32| match grads {
        Dtype::Bf16 => reference::bf16_to_f32(reference::f32_to_bf16(g)),
        Dtype::F16 => reference::f16_to_f32(reference::f32_to_f16(g)),
        Dtype::F32 => g,
    };
    for step in 0..steps {
        let values: Vec<f32> = step_grads(n, step, options)
            .into_iter()
            .map(exact)
            .collect();
        set.upload_grads(&values)?;
        report = Some(opt.step(&mut set, options)?);
    }
    let params = set.download_params()?;
    Ok((set, params, report.expect("at least one step")))
}

/// The gradients of step `step` of [`run_steps`]: fixed data, with every 97th element NaN
/// (from a per-step start) when `options` zero NaNs.
pub fn step_grads(n: usize, step: u64, options: &StepOptions) -> Vec<f32> {
    let mut g = sample_data(n, 10 + step, 1.0);
    if options.nonfinite == Nonfinite::ZeroNans {
        for k in (step as usize % 97..n).step_by(97) {
            g[k] = f32::NAN;
        }
    }
    g
}

/// A `skip_above` bound that [`run_steps`] over `n` elements with `options` crosses: between
/// the smallest and the middle of its first three steps' norms (of `g / grad_scale`), so one
/// step is taken and two are skipped.
pub fn crossed_bound(n: usize, options: &StepOptions) -> f32 {
    let mut norms: Vec<f32> = (0..3)
        .map(|s| reference::global_norm(&[&step_grads(n, s, options)], 2.0) / options.grad_scale)
        .collect();
    norms.sort_by(f32::total_cmp);
    0.5 * (norms[0] + norms[1])
}

/// The options of the verified steps: clip by global L2 norm at 1, loss scale 2.
pub fn clipped_step() -> StepOptions {
    StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        grad_scale: 2.0,
        ..Default::default()
    }
}

/// The step a rule's verify rows take, and its label: [`clipped_step`], unclipped for a
/// rule with quantized states (the two backends' norms differ in their last bits, and a
/// clip coefficient one ulp apart may move a state by a whole code; the per-step
/// comparison with the reference, `tests/rules.rs`, covers its clipped steps).
fn rule_step<C: RuleConfig>() -> (StepOptions, &'static str) {
    match C::QUANTIZED {
        true => (
            StepOptions {
                clip: Clip::None,
                ..clipped_step()
            },
            "unclipped, scale 2",
        ),
        false => (clipped_step(), "clip 1, scale 2"),
    }
}

/// `steps` steps of `config` with `options` on `ctx` against the CPU backend (the reference).
pub fn rule<C: Build>(
    ctx: &Context, case: &Case, label: &str, config: &C, options: &StepOptions,
) -> clipstep::Result<Check> {
    const STEPS: u64 = 3;
    let (set, got, _) = run_steps(ctx, case, config, STEPS, options)?;
    let (_, want, _) = run_steps(&Context::cpu(), case, config, STEPS, options)?;
    let op = format!("{label} x{STEPS}");
    let tol = f64::from(TRAJECTORY_REL);
    Ok(check(op, case, &set, &got, &want, tol, TRAJECTORY_FLOOR))
}

/// The verify row of every registered rule: its representative (first) example, three
/// clipped steps on `ctx` against the CPU backend.
struct RuleRows<'a> {
    ctx: &'a Context,
    case: &'a Case,
    out: Vec<clipstep::Result<Check>>,
}

impl RuleVisitor for RuleRows<'_> {
    fn visit<C: RuleConfig>(&mut self) {
        if !has_matrix_row(self.case, C::MATRICES) {
            return;
        }
        let config = C::examples().remove(0);
        let (options, how) = rule_step::<C>();
        let label = format!("{} ({how})", C::NAME);
        let row = rule(self.ctx, self.case, &label, &config, &options);
        self.out.push(row);
    }
}

/// Every fused optimizer on `ctx` against the CPU backend, for `case` (each registered
/// rule, and AdamW in three groups); then a step that computes no norm, and the per-tensor
/// norms an optimizer's report holds.
pub fn optimizers(ctx: &Context, case: &Case) -> clipstep::Result<Vec<Check>> {
    let clipped = clipped_step();
    let sgd = SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        ..Default::default()
    };
    // Every registered rule, its representative example.
    let mut rows = RuleRows {
        ctx,
        case,
        out: Vec::new(),
    };
    clipstep::for_each_rule(&mut rows);
    let mut out = rows.out.into_iter().collect::<clipstep::Result<Vec<_>>>()?;
    out.push(rule(
        ctx,
        case,
        "AdamW, 3 groups (clip 1, scale 2)",
        &ThreeGroups(AdamWConfig::default()),
        &clipped,
    )?);
    // No norm clip under Propagate: no norm pass at all, and the report says so.
    let no_norm = StepOptions {
        clip: Clip::Value { clip_value: 0.5 },
        nonfinite: Nonfinite::Propagate,
        ..Default::default()
    };
    let zero_nans = StepOptions {
        nonfinite: Nonfinite::ZeroNans,
        ..clipped
    };
    let label = "AdamW, ZeroNans (NaN every 97th)";
    out.push(rule(ctx, case, label, &AdamWConfig::default(), &zero_nans)?);
    let n = case.sizes.iter().sum();
    let skip = StepOptions {
        skip_above: Some(crossed_bound(n, &clipped)),
        ..clipped
    };
    let label = "AdamW, skip_above (2 of 3 skipped)";
    out.push(rule(ctx, case, label, &AdamWConfig::default(), &skip)?);
    let mut plain = rule(ctx, case, "SGD (value clip, no norm)", &sgd, &no_norm)?;
    let (_, _, report) = run_steps(ctx, case, &sgd, 1, &no_norm)?;
    plain.pass &= !report.has_norm() && report.tensor_norms_blocking()?.is_empty();
    out.push(plain);
    // The report of a clipped step holds the per-tensor norms of g / grad_scale.
    let (set, _, report) = run_steps(ctx, case, &AdamWConfig::default(), 1, &clipped)?;
    let last: Vec<f32> = sample_data(set.numel() as usize, 10, 1.0)
        .iter()
        .map(|g| g / clipped.grad_scale)
        .collect();
    let want = reference::per_tensor_norms(&split(&last, &case.sizes), 2.0);
    let got = report.tensor_norms_blocking()?;
    out.push(check(
        "AdamW report: tensor norms".into(),
        case,
        &set,
        &got,
        &want,
        NORM_REL,
        f64::MIN_POSITIVE,
    ));
    Ok(out)
}

/// Mixed precision on `ctx` for `case`: three clipped AdamW steps on a bf16 and an f16
/// set with f32 master weights against the CPU backend's f32 steps on the same (16-bit)
/// gradients; the 16-bit copy exactly the master rounded to nearest even; and the loss
/// scale kept on the device through a scripted overflow, against the reference rule.
pub fn mixed(ctx: &Context, case: &Case) -> clipstep::Result<Vec<Check>> {
    let n: usize = case.sizes.iter().sum();
    let options = |dtype| ArenaOptions {
        dtype,
        master_weights: true,
        max_slab_bytes: case.max_slab_bytes,
        ..Default::default()
    };
    let mut out = Vec::new();
    for (dtype, name) in [(Dtype::Bf16, "bf16"), (Dtype::F16, "f16")] {
        let mut set = ParamSet::new(ctx, &specs(&case.sizes), options(dtype))?;
        let mut host = ParamSet::new(&Context::cpu(), &specs(&case.sizes), options(Dtype::F32))?;
        let init = sample_data(n, 2, 1.0);
        set.upload_params(&init)?;
        host.upload_params(&init)?;
        let config = AdamWConfig::default();
        let (mut opt, mut host_opt) = (AdamW::new(&set, config)?, AdamW::new(&host, config)?);
        for step in 0..3 {
            set.upload_grads(&sample_data(n, 10 + step, 1.0))?;
            host.upload_grads(&set.download_grads()?)?;
            opt.step(&mut set, &clipped_step())?;
            host_opt.step(&mut host, &clipped_step())?;
        }
        let master = set.download_params()?;
        let op = format!("AdamW x3, {name} + f32 master (clip 1, scale 2)");
        let tol = f64::from(TRAJECTORY_REL);
        out.push(check(
            op,
            case,
            &set,
            &master,
            &host.download_params()?,
            tol,
            TRAJECTORY_FLOOR,
        ));
        let widen = |h: u16| match dtype {
            Dtype::Bf16 => reference::bf16_to_f32(h),
            _ => reference::f16_to_f32(h),
        };
        let round = |x: f32| match dtype {
            Dtype::Bf16 => reference::f32_to_bf16(x),
            _ => reference::f32_to_f16(x),
        };
        let copy: Vec<f32> = set.download_params_bits()?.into_iter().map(widen).collect();
        let want: Vec<f32> = master.iter().map(|&x| widen(round(x))).collect();
        let op = format!("{name} copy = master rounded (exact)");
        out.push(check(op, case, &set, &copy, &want, 0.0, f64::MIN_POSITIVE));
    }
    // f16 under a loss scaler (interval 2): an Inf at steps 2 and 3 skips them and backs
    // the scale off twice; each step's reported scale against the reference rule.
    let mut set = ParamSet::new(ctx, &specs(&case.sizes), options(Dtype::F16))?;
    set.upload_params(&sample_data(n, 2, 1.0))?;
    let mut opt = AdamW::new(&set, AdamWConfig::default())?;
    let scaler = LossScaler {
        init_scale: 1024.0,
        growth_interval: 2,
        ..Default::default()
    };
    opt.loss_scaling().set_scaler(Some(scaler))?;
    let mut want = reference::ScaleState {
        scale: 1024.0,
        growth_tracker: 0,
        hysteresis_left: 1,
    };
    let (mut got_scales, mut want_scales) = (Vec::new(), Vec::new());
    for step in 0..6u64 {
        let overflow = step == 2 || step == 3;
        let mut grads = sample_data(n, 20 + step, 1.0);
        if overflow {
            grads[n / 2] = f32::INFINITY;
        }
        set.upload_grads(&grads)?;
        let state = opt
            .step(&mut set, &StepOptions::default())?
            .read_blocking()?;
        want = reference::update_scale(want, overflow, 2.0, 0.5, 2, 1);
        let skip = if state.skipped == overflow {
            0.0
        } else {
            f32::NAN
        };
        got_scales.push(state.loss_scale + skip);
        want_scales.push(want.scale);
    }
    let op = "f16 loss scale, overflow at steps 2, 3 (exact)".to_string();
    out.push(check(op, case, &set, &got_scales, &want_scales, 0.0, 1.0));
    Ok(out)
}

/// The set of `case`'s tensors as external tensors of `ctx`'s device, pooled in two caller
/// buffers (params in one, grads in the other, each tensor at an offset aligned to the
/// device's storage offset alignment): one slab read through its place table.
fn pooled_set(ctx: &Context, case: &Case, matrices: bool) -> clipstep::Result<ParamSet> {
    let (device, limits) = match (ctx.device_queue(), ctx.limits()) {
        (Some((device, _)), Some(limits)) => (device, limits),
        _ => return Err(clipstep::Error::NeedsGpu("a pool of external tensors")),
    };
    let align = u64::from(limits.min_storage_buffer_offset_alignment);
    let mut offsets = Vec::with_capacity(case.sizes.len());
    let mut end = 0u64;
    for &n in &case.sizes {
        offsets.push(end);
        end = (end + (n as u64 * 4).next_multiple_of(16)).next_multiple_of(align);
    }
    let buffer = |label: &str| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: end.max(16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    };
    let (params, grads) = (buffer("verify pool params"), buffer("verify pool grads"));
    let external = shaped_specs(&case.sizes, matrices)
        .into_iter()
        .zip(&offsets)
        .map(|(spec, &offset)| clipstep::ExternalTensor {
            name: spec.name,
            shape: spec.shape,
            params: clipstep::BufferRange {
                buffer: params.clone(),
                offset,
            },
            grads: clipstep::BufferRange {
                buffer: grads.clone(),
                offset,
            },
        })
        .collect();
    let options = ArenaOptions {
        external,
        ..Default::default()
    };
    ParamSet::new(ctx, &[], options)
}

/// Every registered rule (its first example) over `case`'s tensors in a caller's pool and
/// in a bf16 set with f32 master weights, each against the CPU backend's f32 steps on the
/// same (bf16-exact) gradients: three clipped steps. The trust rules (LARS, LAMB) run their
/// trust pass there too.
struct RuleSets<'a> {
    ctx: &'a Context,
    case: &'a Case,
    out: Vec<clipstep::Result<Check>>,
}

impl RuleSets<'_> {
    /// Three clipped steps of `config` on the set `build` makes, against the CPU backend.
    fn row<C: RuleConfig>(
        &self, config: &C, label: &str, dtype: Dtype,
        build: impl Fn() -> clipstep::Result<ParamSet>,
    ) -> clipstep::Result<Check> {
        let (options, how) = rule_step::<C>();
        let (set, got, _) = run_steps_on(build()?, config, 3, &options, dtype)?;
        let cpu = case_set_shaped(&Context::cpu(), self.case, 1, C::MATRICES)?.0;
        let (_, want, _) = run_steps_on(cpu, config, 3, &options, dtype)?;
        let op = format!("{} x3, {label} ({how})", C::NAME);
        let tol = f64::from(TRAJECTORY_REL);
        Ok(check(
            op,
            self.case,
            &set,
            &got,
            &want,
            tol,
            TRAJECTORY_FLOOR,
        ))
    }
}

impl RuleVisitor for RuleSets<'_> {
    fn visit<C: RuleConfig>(&mut self) {
        if !has_matrix_row(self.case, C::MATRICES) {
            return;
        }
        let config = C::examples().remove(0);
        let (ctx, case) = (self.ctx, self.case);
        if ctx.is_gpu() {
            let row = self.row(&config, "pooled", Dtype::F32, || {
                pooled_set(ctx, case, C::MATRICES)
            });
            self.out.push(row);
        }
        let bf16 = ArenaOptions {
            dtype: Dtype::Bf16,
            master_weights: true,
            max_slab_bytes: case.max_slab_bytes,
            ..Default::default()
        };
        let row = self.row(&config, "bf16 + f32 master", Dtype::Bf16, || {
            ParamSet::new(ctx, &shaped_specs(&case.sizes, C::MATRICES), bf16.clone())
        });
        self.out.push(row);
    }
}

/// [`RuleSets`] for `case`: every rule over a pool and a bf16 set.
pub fn every_rule_on_every_set(ctx: &Context, case: &Case) -> clipstep::Result<Vec<Check>> {
    let mut sets = RuleSets {
        ctx,
        case,
        out: Vec::new(),
    };
    clipstep::for_each_rule(&mut sets);
    sets.out.into_iter().collect()
}

/// A loss scale near f32's top: 2^100. Scaled gradients of up to 2^100 have L2 norms past
/// 2^64, whose f32 sum of squares would overflow; unscaled they are below 1.
pub const LARGE_LOSS_SCALE: f32 = 1.2676506e30;

/// f32 gradients at a loss scale of [`LARGE_LOSS_SCALE`] (unscaled values in [-1, 1)): a
/// clipped AdamW step with `StepOptions::grad_scale` for L2, L1, L∞ and p = 3 (its total
/// and per-tensor norms, those of the unscaled gradients, and no flag), and six steps under
/// a loss scaler starting there (interval 2, so the scale reaches 2^102): no step flagged,
/// each step's norm and the scale after it against the reference rule.
pub fn large_loss_scale(ctx: &Context, case: &Case) -> clipstep::Result<Vec<Check>> {
    let mut out = Vec::new();
    let n: usize = case.sizes.iter().sum();
    // A flagged or skipped step turns its checked value into NaN, which fails the check.
    let flagged = |state: &clipstep::StepState| {
        if state.nonfinite || state.skipped {
            f32::NAN
        } else {
            0.0
        }
    };
    for norm in [Norm::L2, Norm::L1, Norm::Inf, Norm::P(3.0)] {
        let (mut set, unscaled) = case_set(ctx, case, 7)?;
        let scaled: Vec<f32> = unscaled.iter().map(|g| g * LARGE_LOSS_SCALE).collect();
        set.upload_grads(&scaled)?;
        let mut opt = AdamW::new(&set, AdamWConfig::default())?;
        let options = StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: 1.0,
                norm,
            },
            grad_scale: LARGE_LOSS_SCALE,
            ..Default::default()
        };
        let report = opt.step(&mut set, &options)?;
        let state = report.read_blocking()?;
        let p = norm.order();
        let tensors = split(&unscaled, &case.sizes);
        let mut got = vec![state.total_norm + flagged(&state)];
        got.extend(report.tensor_norms_blocking()?);
        let mut want = vec![reference::global_norm(&tensors, p)];
        want.extend(reference::per_tensor_norms(&tensors, p));
        let op = format!("step at loss scale 2^100, {norm:?} norms of g / scale");
        out.push(check(
            op,
            case,
            &set,
            &got,
            &want,
            norm_tolerance(norm),
            1e-30,
        ));
    }
    let (mut set, _) = case_set(ctx, case, 8)?;
    let mut opt = AdamW::new(&set, AdamWConfig::default())?;
    let scaler = LossScaler {
        init_scale: LARGE_LOSS_SCALE,
        growth_interval: 2,
        ..Default::default()
    };
    opt.loss_scaling().set_scaler(Some(scaler))?;
    let mut want_scale = reference::ScaleState {
        scale: LARGE_LOSS_SCALE,
        growth_tracker: 0,
        hysteresis_left: 1,
    };
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for step in 0..6u64 {
        let unscaled = sample_data(n, 30 + step, 1.0);
        let scaled: Vec<f32> = unscaled.iter().map(|g| g * want_scale.scale).collect();
        set.upload_grads(&scaled)?;
        let state = opt
            .step(&mut set, &StepOptions::default())?
            .read_blocking()?;
        want_scale = reference::update_scale(want_scale, false, 2.0, 0.5, 2, 1);
        got.extend([state.loss_scale + flagged(&state), state.total_norm]);
        want.extend([want_scale.scale, reference::global_norm(&[&unscaled], 2.0)]);
    }
    let op = "loss scaler from 2^100: scales and norms".to_string();
    out.push(check(op, case, &set, &got, &want, NORM_REL, 1e-30));
    Ok(out)
}

/// Every check of `clipstep verify` on `ctx`.
pub fn verify(ctx: &Context) -> clipstep::Result<Vec<Check>> {
    let mut out = Vec::new();
    for case in cases() {
        out.extend(norms_and_clips(ctx, &case)?);
        out.extend(optimizers(ctx, &case)?);
        out.extend(mixed(ctx, &case)?);
        out.extend(large_loss_scale(ctx, &case)?);
        out.extend(every_rule_on_every_set(ctx, &case)?);
    }
    Ok(out)
}
