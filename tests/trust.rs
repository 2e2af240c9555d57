//! LARS and LAMB (Optax's rules) on the device against the CPU reference: every clip and
//! loss scale, several slabs, 2,000 tensors (each its own trust ratio), 100-step
//! trajectories, groups excluding tensors from the trust ratio, typed errors.

mod common;

use clipstep::*;
use common::harness::three_groups;
use common::steps::*;
use common::*;

fn lars_configs() -> Vec<LarsConfig> {
    let d = LarsConfig::default();
    vec![
        d,
        LarsConfig {
            lr: 0.5,
            weight_decay: 1e-3,
            trust_coefficient: 0.02,
            eps: 1e-6,
            nesterov: true,
            ..d
        },
        LarsConfig {
            trust: false,
            momentum: 0.0,
            ..d
        },
    ]
}

fn lamb_configs() -> Vec<LambConfig> {
    let d = LambConfig::default();
    vec![
        d,
        LambConfig {
            lr: 1e-2,
            betas: (0.8, 0.99),
            weight_decay: 0.01,
            eps_root: 1e-8,
            ..d
        },
    ]
}

#[test]
fn lars_steps_match_reference() {
    matrix(lars_configs());
}

#[test]
fn lamb_steps_match_reference() {
    matrix(lamb_configs());
}

#[test]
fn hundred_step_trajectories_match_reference() {
    let tiny: Vec<usize> = (0..2000).map(|i| 1 + i % 5).collect();
    for (sizes, slab) in [(vec![40_000, 3, 12_345], Some(16 * 1024)), (tiny, None)] {
        trajectory(lars_configs()[1], &sizes, slab);
        trajectory(lamb_configs()[1], &sizes, slab);
    }
}

/// A group out of the trust ratio (LARS's trust_ratio_mask) steps as plain momentum SGD
/// on the learning rate, while the others are scaled, on the device and the CPU backend.
#[test]
fn groups_choose_the_trust_ratio() {
    let sizes = [300, 7, 64];
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, grads) = set_with_grads(&ctx, &sizes, None, 1);
        set.upload_params(&data(371, 2, 1.0)).unwrap();
        let params = set.download_params().unwrap();
        let groups = three_groups(&set, |g| LarsConfig {
            trust: g != 1,
            momentum: 0.0,
            ..Default::default()
        });
        let mut opt = Lars::with_groups(&set, groups).unwrap();
        opt.step(&mut set, &StepOptions::default()).unwrap();
        let got = set.download_params().unwrap();
        // Tensor 1 (group 1, 7 elements): p − lr·g exactly.
        for i in 300..307 {
            assert_eq!(got[i], params[i] + grads[i] * -0.1f32, "{}", ctx.describe());
        }
        // Tensor 0 moved by a trust-scaled step: ‖Δ‖ = lr·0.001·‖p‖.
        let moved: f64 = (0..300)
            .map(|i| f64::from(got[i] - params[i]).powi(2))
            .sum::<f64>()
            .sqrt();
        let p_norm: f64 = params[..300]
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt();
        let want = 0.1 * 0.001 * p_norm;
        assert!((moved - want).abs() < 1e-3 * want, "{moved} vs {want}");
    }
}

/// Trust-ratio rules over an external tensor whose params and grads share one caller
/// buffer step bit for bit as over clipstep's own slabs: the trust pass reads through the
/// same access and addressing parts as the update.
#[test]
fn external_tensors_step_like_own_slabs() {
    let ctx = ctx();
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    let lars = LarsConfig {
        weight_decay: 1e-3,
        nesterov: true,
        ..Default::default()
    };
    let lamb = LambConfig {
        weight_decay: 0.01,
        ..Default::default()
    };
    type Build<'a> = &'a dyn Fn(&ParamSet) -> Box<dyn Optimizer>;
    let runs: [(&str, Build<'_>); 2] = [
        ("lars", &|s| Box::new(lars.build(s).unwrap())),
        ("lamb", &|s| Box::new(lamb.build(s).unwrap())),
    ];
    for (what, build) in runs {
        let buffer = user_storage(&ctx, 4096);
        let external = set_with_external(&ctx, 100, (&buffer, 0), (&buffer, 1024));
        let (own, _) = set_with_grads(&ctx, &[100, 100], None, 1);
        let mut results = Vec::new();
        for mut set in [external, own] {
            set.upload_params(&data(200, 2, 1.0)).unwrap();
            let mut opt = build(&set);
            for step in 0..3 {
                set.upload_grads(&data(200, 10 + step, 1.0)).unwrap();
                opt.step(&mut set, &options).unwrap();
            }
            results.push(set.download_params().unwrap());
        }
        assert_bits_eq(&results[0], &results[1], what);
    }
}

#[test]
fn invalid_hyperparameters_are_typed_errors() {
    let (set, _) = set_with_grads(&ctx(), &[10], None, 1);
    let d = LarsConfig::default();
    for c in [
        LarsConfig { lr: -1.0, ..d },
        LarsConfig {
            trust_coefficient: -1.0,
            ..d
        },
        LarsConfig {
            momentum: f64::NAN,
            ..d
        },
    ] {
        let err = Lars::new(&set, c).err().unwrap();
        assert!(
            matches!(
                err,
                Error::InvalidHyperparameter {
                    optimizer: "LARS",
                    ..
                }
            ),
            "{err}"
        );
    }
    let d = LambConfig::default();
    for c in [
        LambConfig { eps: -1.0, ..d },
        LambConfig {
            betas: (1.0, 0.9),
            ..d
        },
        LambConfig {
            weight_decay: -0.5,
            ..d
        },
    ] {
        let err = Lamb::new(&set, c).err().unwrap();
        assert!(
            matches!(
                err,
                Error::InvalidHyperparameter {
                    optimizer: "LAMB",
                    ..
                }
            ),
            "{err}"
        );
    }
}

/// A step skipped for a NaN changes no bit: LAMB's trust pass, which writes the moments,
/// is skipped with the update.
#[test]
fn a_skipped_step_leaves_the_moments_alone() {
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, grads) = set_with_grads(&ctx, &[500, 3], Some(1024), 1);
        set.upload_params(&data(503, 2, 1.0)).unwrap();
        let mut opt = Lamb::new(&set, LambConfig::default()).unwrap();
        opt.step(&mut set, &StepOptions::default()).unwrap();
        let before = (
            set.download_params().unwrap(),
            opt.state("exp_avg").unwrap(),
            opt.state("exp_avg_sq").unwrap(),
        );
        let mut poisoned = grads.clone();
        poisoned[501] = f32::NAN;
        set.upload_grads(&poisoned).unwrap();
        let state = opt.step(&mut set, &StepOptions::default()).unwrap();
        assert!(state.read_blocking().unwrap().skipped);
        assert_bits_eq(&set.download_params().unwrap(), &before.0, "params");
        assert_bits_eq(&opt.state("exp_avg").unwrap(), &before.1, "exp_avg");
        assert_bits_eq(&opt.state("exp_avg_sq").unwrap(), &before.2, "exp_avg_sq");
        assert_eq!(opt.step_count().unwrap(), 1);
    }
}
