//! Adagrad (PyTorch's rule) and Lion (Optax's) on the device against the CPU reference:
//! every clip and loss scale, several slabs, 2,000 tensors, 100-step trajectories, groups,
//! Adagrad's initial accumulator (also for tensors a checkpoint lacks), typed errors.

mod common;

use clipstep::*;
use common::harness::three_groups;
use common::steps::*;
use common::*;

fn adagrad_configs() -> Vec<AdagradConfig> {
    let d = AdagradConfig::default();
    vec![
        d,
        AdagradConfig {
            lr: 5e-2,
            lr_decay: 0.01,
            weight_decay: 0.01,
            initial_accumulator_value: 0.1,
            ..d
        },
        AdagradConfig {
            maximize: true,
            eps: 1e-6,
            ..d
        },
    ]
}

fn lion_configs() -> Vec<LionConfig> {
    let d = LionConfig {
        lr: 1e-3,
        ..Default::default()
    };
    vec![
        d,
        LionConfig {
            betas: (0.95, 0.98),
            weight_decay: 0.1,
            ..d
        },
        LionConfig {
            weight_decay: 0.0,
            ..d
        },
    ]
}

#[test]
fn adagrad_steps_match_reference() {
    matrix(adagrad_configs());
}

#[test]
fn lion_steps_match_reference() {
    matrix(lion_configs());
}

#[test]
fn hundred_step_trajectories_match_reference() {
    let tiny: Vec<usize> = (0..2000).map(|i| 1 + i % 5).collect();
    for (sizes, slab) in [(vec![40_000, 3, 12_345], Some(16 * 1024)), (tiny, None)] {
        trajectory(adagrad_configs()[1], &sizes, slab);
        trajectory(lion_configs()[1], &sizes, slab);
    }
}

/// Adagrad's accumulator starts at each group's `initial_accumulator_value`, on the device
/// and on the CPU backend; a tensor a checkpoint lacks starts there too.
#[test]
fn adagrad_accumulators_start_at_their_groups_value() {
    for ctx in [ctx(), Context::cpu()] {
        let sizes = [70, 1, 300];
        let (set, _) = set_with_grads(&ctx, &sizes, None, 1);
        let groups = three_groups(&set, |g| AdagradConfig {
            initial_accumulator_value: [0.0, 0.5, 2.0][g],
            ..Default::default()
        });
        let mut opt = Adagrad::with_groups(&set, groups).unwrap();
        let want: Vec<f32> = [(70, 0.0), (1, 0.5), (300, 2.0)]
            .iter()
            .flat_map(|&(n, v)| vec![v; n])
            .collect();
        assert_eq!(opt.state("sum").unwrap(), want, "{}", ctx.describe());
        // A checkpoint of a set without the last tensor, loaded with fresh state for it.
        let small = ctx.param_set(&specs(&[70, 1])).unwrap();
        let groups = three_groups(&small, |g| AdagradConfig {
            initial_accumulator_value: [7.0, 7.0, 7.0][g],
            ..Default::default()
        });
        let saved = Adagrad::with_groups(&small, groups)
            .unwrap()
            .save()
            .unwrap();
        let options = LoadOptions {
            missing: MissingTensors::FreshState,
            ..Default::default()
        };
        opt.load_with(&saved, &options).unwrap();
        let mut want = vec![7.0; 71];
        want.extend(vec![2.0; 300]);
        assert_eq!(opt.state("sum").unwrap(), want, "{}", ctx.describe());
    }
}

/// Lion's update is a sign: each parameter moves by exactly lr (plus its weight decay)
/// on the first step, however large or small its gradient.
#[test]
fn lion_moves_every_parameter_by_lr() {
    let ctx = ctx();
    let sizes = [1000];
    let (mut set, grads) = set_with_grads(&ctx, &sizes, None, 3);
    set.upload_params(&vec![0.0; 1000]).unwrap();
    let config = LionConfig {
        lr: 0.25,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = config.build(&set).unwrap();
    opt.step(&mut set, &StepOptions::default()).unwrap();
    let params = set.download_params().unwrap();
    for (p, g) in params.iter().zip(&grads) {
        let want = if *g == 0.0 { 0.0 } else { -0.25 * g.signum() };
        assert_eq!(*p, want, "gradient {g}");
    }
}

#[test]
fn invalid_hyperparameters_are_typed_errors() {
    let (set, _) = set_with_grads(&ctx(), &[10], None, 1);
    let d = AdagradConfig::default();
    for (name, c) in [
        ("lr", AdagradConfig { lr: -1.0, ..d }),
        (
            "lr_decay value",
            AdagradConfig {
                lr_decay: -1.0,
                ..d
            },
        ),
        (
            "weight_decay value",
            AdagradConfig {
                weight_decay: -1.0,
                ..d
            },
        ),
        (
            "initial_accumulator_value",
            AdagradConfig {
                initial_accumulator_value: -1.0,
                ..d
            },
        ),
        ("epsilon value", AdagradConfig { eps: f64::NAN, ..d }),
    ] {
        let err = Adagrad::new(&set, c).err().unwrap();
        assert!(
            matches!(err, Error::InvalidHyperparameter { optimizer: "Adagrad", name: n, .. } if n == name),
            "{err}"
        );
    }
    let d = LionConfig::default();
    for (name, c) in [
        ("lr", LionConfig { lr: -1.0, ..d }),
        (
            "weight_decay value",
            LionConfig {
                weight_decay: -0.1,
                ..d
            },
        ),
        (
            "beta1",
            LionConfig {
                betas: (1.5, 0.99),
                ..d
            },
        ),
        (
            "beta2",
            LionConfig {
                betas: (0.9, -0.1),
                ..d
            },
        ),
    ] {
        let err = Lion::new(&set, c).err().unwrap();
        assert!(
            matches!(err, Error::InvalidHyperparameter { optimizer: "Lion", name: n, .. } if n == name),
            "{err}"
        );
    }
}

/// The defaults are PyTorch's for Adagrad and Optax's for Lion (with Lion's learning rate,
/// which Optax leaves to the caller, at the paper's scale).
#[test]
fn defaults_are_the_anchors() {
    let a = AdagradConfig::default();
    assert_eq!(
        (
            a.lr,
            a.lr_decay,
            a.weight_decay,
            a.initial_accumulator_value,
            a.eps
        ),
        (1e-2, 0.0, 0.0, 0.0, 1e-10)
    );
    assert!(!a.maximize);
    let l = LionConfig::default();
    assert_eq!((l.betas, l.weight_decay), ((0.9, 0.99), 1e-3));
}
