//! Muon on the device against its CPU reference (`reference::muon`, itself held to
//! torch.optim.Muon's fixtures): awkward matrices (1 × 1, one row, one column, primes, tall,
//! wide, several 64-wide tiles), every example config under every clip and a loss scale,
//! matrices spanning slabs, grids past the dimension limit, many matrices in one set, bf16
//! and f16 parameters (master weights or in place), the CPU backend over 20 steps,
//! determinism, skipped steps, checkpoints, the Muon + AdamW recipe sharing one global
//! norm, and the typed errors. (The generic tests over every registered rule step vectors,
//! which Muon refuses: they skip it, and this file covers what they would.)

mod common;

use clipstep::consts::tolerance::{UPDATE_ABS, UPDATE_ULPS};
use clipstep::reference::{clip_coef, effective_grad, global_norm};
use clipstep::*;
use common::steps::{clipped_and_scaled, downloads};
use common::*;

/// Matrices of every kind Muon treats apart.
const SHAPES: &[[usize; 2]] = &[[1, 1], [1, 7], [7, 1], [5, 8], [8, 5], [67, 131], [130, 67]];

/// One at a time: on the GL backend every call holds the one GL context, which wgpu gives
/// up waiting for after 6 s (a first step compiles the kernels).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn specs(shapes: &[[usize; 2]]) -> Vec<TensorSpec> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| TensorSpec::new(format!("w{i}"), s.to_vec()))
        .collect()
}

fn numel(shapes: &[[usize; 2]]) -> usize {
    shapes.iter().map(|[r, c]| r * c).sum()
}

fn set_of(ctx: &Context, shapes: &[[usize; 2]], options: ArenaOptions) -> ParamSet {
    let mut set = ParamSet::new(ctx, &specs(shapes), options).unwrap();
    set.upload_params(&data(numel(shapes), 2, 1.0)).unwrap();
    set
}

/// The reference's step over every matrix of a set: `params` and `momentum` concatenated.
fn reference_step(
    config: &MuonConfig, shapes: &[[usize; 2]], params: &mut [f32], grads: &[f32],
    momentum: &mut [f32],
) {
    let mut at = 0;
    for shape in shapes {
        let n = shape[0] * shape[1];
        config.reference_step(
            1,
            TensorStep {
                params: &mut params[at..at + n],
                grads: &grads[at..at + n],
                shape,
                states: [Some(&mut momentum[at..at + n]), None, None],
            },
        );
        at += n;
    }
}

/// The parameters within `UPDATE_ULPS` or 1e-6 of the largest plus each matrix's step
/// times the orthogonalization's tolerance: 1e-5 of `|O| ≤ 1.5` in f32 (sums in another
/// order), a bf16 unit (2⁻⁷) with `ns_bf16` (a last-bit difference flips a rounding); plus
/// `rounded` of `|want|`, where the device's parameters are 16-bit (half a unit in the last
/// place, and the rounding of a value within the tolerance).
fn assert_params_close(
    config: &MuonConfig, shapes: &[[usize; 2]], got: &[f32], want: &[f32], rounded: f32, what: &str,
) {
    let scale = want.iter().fold(0f32, |m, w| m.max(w.abs()));
    let o_tol = if config.ns_bf16 { 2f32.powi(-7) } else { 1e-5 } * 1.5;
    let mut at = 0;
    for (k, &[r, c]) in shapes.iter().enumerate() {
        let step = config.adjust_lr_fn.adjusted_lr(config.lr, r, c) as f32;
        for i in at..at + r * c {
            let (g, w) = (got[i], want[i]);
            let bound = 1e-6 * scale + step * o_tol + rounded * w.abs();
            let ok = reference::ulps(g, w) <= UPDATE_ULPS || (g - w).abs() <= bound;
            assert!(
                ok,
                "{what}: matrix {k} ({r}x{c}) [{}]: device {g:e}, reference {w:e}",
                i - at
            );
        }
        at += r * c;
    }
}

/// Three steps of `config` on `ctx` with `options`: before each the reference takes the
/// device's parameters and momentum; after it, both must agree.
fn steps_match(
    ctx: &Context, config: MuonConfig, options: StepOptions, shapes: &[[usize; 2]],
    arena: ArenaOptions,
) {
    // 16-bit parameters stepped in place: the device's are its update rounded.
    let rounded = match (arena.dtype, arena.master_weights) {
        (Dtype::Bf16, false) => 2f32.powi(-7),
        (Dtype::F16, false) => 2f32.powi(-10),
        _ => 0.0,
    };
    let mut set = set_of(ctx, shapes, arena);
    let n = numel(shapes);
    let mut opt = Muon::new(&set, config).unwrap();
    let sizes: Vec<usize> = shapes.iter().map(|[r, c]| r * c).collect();
    for step in 0..3u64 {
        set.upload_grads(&data(n, 10 + step, 1.0 + step as f32))
            .unwrap();
        // What the device holds (16-bit gradients rounded).
        let grads = set.download_grads().unwrap();
        let (mut p, mut s) = downloads(&opt, &set);
        let state = opt
            .step(&mut set, &options)
            .unwrap()
            .read_blocking()
            .unwrap();
        let what = format!("{config:?}, {options:?}, step {step}");
        let norm = options.clip.norm_clip().map_or(Norm::L2, |(_, n)| n);
        let inv = 1.0 / options.grad_scale;
        let parts: Vec<&[f32]> = harness::split(&grads, &sizes);
        let total = global_norm(&parts, norm.order()) * inv;
        assert_rel(
            state.total_norm,
            total,
            harness::norm_tolerance(norm),
            &what,
        );
        if let Some((max_norm, _)) = options.clip.norm_clip() {
            let coef = clip_coef(total, max_norm);
            assert_rel(state.clip_coef, coef, harness::norm_tolerance(norm), &what);
        }
        let effective: Vec<f32> = grads
            .iter()
            .map(|&g| effective_grad(g, inv, state.clip_coef, options.clip.value_clip()))
            .collect();
        let momentum = s
            .get_mut("momentum_buffer")
            .expect("Muon keeps momentum_buffer");
        reference_step(&config, shapes, &mut p, &effective, momentum);
        let (gp, gs) = downloads(&opt, &set);
        assert_close_elementwise(
            &gs["momentum_buffer"],
            &s["momentum_buffer"],
            UPDATE_ULPS,
            UPDATE_ABS,
            &format!("{what}: momentum_buffer"),
        );
        assert_params_close(
            &config,
            shapes,
            &gp,
            &p,
            rounded,
            &format!("{what}: params"),
        );
    }
}

/// Every example config under every clip, with and without a loss scale.
#[test]
fn every_example_under_every_clip_matches_the_reference() {
    let _one = serial();
    for config in MuonConfig::examples() {
        for options in clipped_and_scaled() {
            steps_match(&ctx(), config, options, SHAPES, ArenaOptions::default());
        }
    }
}

/// Matrices spanning slabs of 16 KiB, grids spilling into y, and 300 matrices in one set.
#[test]
fn slabs_grids_and_many_matrices_match_the_reference() {
    let _one = serial();
    let config = MuonConfig::examples().remove(0);
    let small_slabs = ArenaOptions {
        max_slab_bytes: Some(16 * 1024),
        ..Default::default()
    };
    let shapes = [[100, 70], [3, 5000], [61, 61]];
    steps_match(&ctx(), config, clipped(), &shapes, small_slabs);
    steps_match(
        &ctx_small_grid(),
        config,
        clipped(),
        SHAPES,
        ArenaOptions::default(),
    );
    let many: Vec<[usize; 2]> = (0..300).map(|i| [1 + i % 7, 1 + i % 5]).collect();
    steps_match(&ctx(), config, clipped(), &many, ArenaOptions::default());
}

/// bf16 and f16 parameters, with f32 master weights (the master weights are stepped) and
/// stepped in place; the reference reads the gradients as the device holds them, rounded.
#[test]
fn sixteen_bit_parameters_match_the_reference() {
    let _one = serial();
    for (dtype, master_weights) in [
        (Dtype::Bf16, true),
        (Dtype::F16, true),
        (Dtype::Bf16, false),
        (Dtype::F16, false),
    ] {
        let arena = ArenaOptions {
            dtype,
            master_weights,
            ..Default::default()
        };
        for config in MuonConfig::examples().into_iter().take(2) {
            steps_match(&ctx(), config, clipped(), SHAPES, arena.clone());
        }
    }
}

/// 20 steps on the device and on the CPU backend (which runs the reference) stay within
/// the orthogonalization's tolerance of each other.
#[test]
fn the_cpu_backend_follows_the_device() {
    let _one = serial();
    let config = MuonConfig::examples().remove(0);
    let n = numel(SHAPES);
    let mut results = Vec::new();
    for ctx in [ctx(), Context::cpu()] {
        let mut set = set_of(&ctx, SHAPES, ArenaOptions::default());
        let mut opt = Muon::new(&set, config).unwrap();
        for step in 0..20u64 {
            set.upload_grads(&data(n, 100 + step, 1.0)).unwrap();
            opt.step(&mut set, &clipped()).unwrap();
        }
        results.push(set.download_params().unwrap());
    }
    let scale = results[1].iter().fold(0f32, |m, w| m.max(w.abs()));
    for (i, (g, w)) in results[0].iter().zip(&results[1]).enumerate() {
        assert!((g - w).abs() <= 1e-5 * scale, "[{i}]: device {g}, CPU {w}");
    }
}

/// Two optimizers on the same inputs give the same bits.
#[test]
fn steps_are_deterministic() {
    let _one = serial();
    let config = MuonConfig::default();
    let n = numel(SHAPES);
    let run = || {
        let mut set = set_of(&ctx(), SHAPES, ArenaOptions::default());
        let mut opt = Muon::new(&set, config).unwrap();
        for step in 0..3 {
            set.upload_grads(&data(n, 30 + step, 1.0)).unwrap();
            opt.step(&mut set, &clipped()).unwrap();
        }
        downloads(&opt, &set)
    };
    let (a, sa) = run();
    let (b, sb) = run();
    assert_bits_eq(&a, &b, "params");
    assert_bits_eq(&sa["momentum_buffer"], &sb["momentum_buffer"], "momentum");
}

/// A step whose gradients hold a NaN is skipped under `Nonfinite::Skip`: parameters and
/// momentum stay as they were.
#[test]
fn a_skipped_step_changes_nothing() {
    let _one = serial();
    let n = numel(SHAPES);
    let mut set = set_of(&ctx(), SHAPES, ArenaOptions::default());
    let mut opt = Muon::new(&set, MuonConfig::default()).unwrap();
    set.upload_grads(&data(n, 5, 1.0)).unwrap();
    opt.step(&mut set, &clipped()).unwrap();
    let before = downloads(&opt, &set);
    let mut grads = data(n, 6, 1.0);
    grads[n / 2] = f32::NAN;
    set.upload_grads(&grads).unwrap();
    let options = StepOptions {
        nonfinite: Nonfinite::Skip,
        ..clipped()
    };
    let state = opt
        .step(&mut set, &options)
        .unwrap()
        .read_blocking()
        .unwrap();
    assert!(state.skipped, "the step is skipped");
    let after = downloads(&opt, &set);
    assert_bits_eq(&before.0, &after.0, "params");
    assert_bits_eq(
        &before.1["momentum_buffer"],
        &after.1["momentum_buffer"],
        "momentum",
    );
}

/// A checkpoint resumes exactly; one of other Newton–Schulz settings is refused.
#[test]
fn checkpoints_resume_and_refuse_other_settings() {
    let _one = serial();
    let n = numel(SHAPES);
    let config = MuonConfig::examples().remove(0);
    let mut set = set_of(&ctx(), SHAPES, ArenaOptions::default());
    let mut opt = Muon::new(&set, config).unwrap();
    set.upload_grads(&data(n, 7, 1.0)).unwrap();
    opt.step(&mut set, &clipped()).unwrap();
    let saved = opt.states().save().unwrap();
    let params = set.download_params().unwrap();
    set.upload_grads(&data(n, 8, 1.0)).unwrap();
    opt.step(&mut set, &clipped()).unwrap();
    let straight = downloads(&opt, &set);

    let mut resumed = Muon::new(&set, config).unwrap();
    resumed.checkpoint().load(&saved).unwrap();
    set.upload_params(&params).unwrap();
    resumed.step(&mut set, &clipped()).unwrap();
    let again = downloads(&resumed, &set);
    assert_bits_eq(&straight.0, &again.0, "params");
    assert_bits_eq(
        &straight.1["momentum_buffer"],
        &again.1["momentum_buffer"],
        "momentum",
    );

    let other = MuonConfig {
        ns_steps: 3,
        ..config
    };
    let mut refused = Muon::new(&set, other).unwrap();
    let e = refused.checkpoint().load(&saved).unwrap_err();
    assert!(e.to_string().contains("ns_steps"), "{e}");
}

/// The usual recipe: Muon for the matrices, AdamW for the rest, in two sets whose norm
/// partials combine into one global norm; each optimizer clips by it.
#[test]
fn muon_and_adamw_share_one_global_norm() {
    let _one = serial();
    let ctx = ctx();
    let mut matrices = set_of(&ctx, SHAPES, ArenaOptions::default());
    let others = [TensorSpec::new("bias", [7]), TensorSpec::new("norm", [130])];
    let mut rest = ParamSet::new(&ctx, &others, ArenaOptions::default()).unwrap();
    let mut muon = Muon::new(&matrices, MuonConfig::default()).unwrap();
    let mut adamw = AdamW::new(&rest, AdamWConfig::default()).unwrap();
    let (gm, gr) = (data(numel(SHAPES), 40, 1.0), data(137, 41, 1.0));
    matrices.upload_grads(&gm).unwrap();
    rest.upload_grads(&gr).unwrap();
    let partials = [
        muon.norm_partial(&mut matrices, Norm::L2, Nonfinite::Skip, 0)
            .unwrap(),
        adamw
            .norm_partial(&mut rest, Norm::L2, Nonfinite::Skip, 0)
            .unwrap(),
    ];
    let total = shard::combine(&partials).unwrap();
    let all: Vec<f32> = gm.iter().chain(&gr).copied().collect();
    assert_rel(
        total,
        global_norm(&[&all[..]], 2.0),
        1e-6,
        "the combined norm",
    );
    let options = StepOptions {
        total_norm: Some(total),
        ..clipped()
    };
    for (state, name) in [
        (muon.step(&mut matrices, &options).unwrap(), "Muon"),
        (adamw.step(&mut rest, &options).unwrap(), "AdamW"),
    ] {
        let state = state.read_blocking().unwrap();
        assert_eq!(state.total_norm, total, "{name}");
        assert_rel(state.clip_coef, clip_coef(total, 1.0), 1e-6, name);
    }
}

/// Bad input is a typed error that names what to fix, and leaves nothing half-built.
#[test]
fn bad_input_is_a_typed_error() {
    let _one = serial();
    let ctx = ctx();
    for bad in [vec![5], vec![], vec![2, 3, 4]] {
        let specs = [TensorSpec::new("w", [2, 3]), TensorSpec::new("b", bad)];
        let set = ParamSet::new(&ctx, &specs, ArenaOptions::default()).unwrap();
        let e = Muon::new(&set, MuonConfig::default())
            .err()
            .expect("refused");
        assert!(
            matches!(&e, Error::InvalidShape { tensor, .. } if tensor == "b"),
            "{e}"
        );
        assert!(e.to_string().contains("AdamW"), "{e}");
        let cpu = ParamSet::new(&Context::cpu(), &specs, ArenaOptions::default()).unwrap();
        assert!(matches!(
            Muon::new(&cpu, MuonConfig::default()),
            Err(Error::InvalidShape { .. })
        ));
    }
    let set = set_of(&ctx, SHAPES, ArenaOptions::default());
    let cases: [(MuonConfig, &str); 4] = [
        (
            MuonConfig {
                ns_steps: 100,
                ..Default::default()
            },
            "ns_steps",
        ),
        (
            MuonConfig {
                momentum: -0.1,
                ..Default::default()
            },
            "momentum",
        ),
        (
            MuonConfig {
                eps: f64::NAN,
                ..Default::default()
            },
            "eps",
        ),
        (
            MuonConfig {
                ns_coefficients: (f64::INFINITY, 0.0, 0.0),
                ..Default::default()
            },
            "ns_coefficients[0]",
        ),
    ];
    for (config, name) in cases {
        let e = Muon::new(&set, config).err().expect("refused");
        assert!(
            matches!(&e, Error::InvalidHyperparameter { name: n, .. } if *n == name),
            "{e}"
        );
    }
    let names: Vec<String> = set.tensors().iter().map(|t| t.name.clone()).collect();
    let group = vec![ParamGroup::new(names, MuonConfig::default())];
    let e = Muon::with_state_dtype(&set, group, Dtype::Bf16)
        .err()
        .expect("refused");
    assert!(matches!(e, Error::NotSupported(_)), "{e}");
}
