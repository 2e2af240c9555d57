//! Fused optimizer steps against the CPU reference.

mod common;

use clipstep::*;
use common::steps::*;
use common::*;

fn sgd_configs() -> Vec<SgdConfig> {
    let d = SgdConfig {
        lr: 0.1,
        ..Default::default()
    };
    vec![
        d,
        SgdConfig { momentum: 0.9, ..d },
        SgdConfig {
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: 0.01,
            ..d
        },
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            ..d
        },
        SgdConfig {
            weight_decay: 0.05,
            maximize: true,
            ..d
        },
    ]
}

fn adam_configs() -> Vec<AdamConfig> {
    let d = AdamConfig {
        lr: 1e-2,
        ..Default::default()
    };
    vec![
        d,
        AdamConfig { amsgrad: true, ..d },
        AdamConfig {
            weight_decay: 0.01,
            maximize: true,
            ..d
        },
        AdamConfig {
            bias_correction: false,
            ..d
        },
        // 1 − β ≥ 0.5 takes torch.lerp's second formula.
        AdamConfig {
            betas: (0.3, 0.6),
            amsgrad: true,
            ..d
        },
    ]
}

fn adamw_configs() -> Vec<AdamWConfig> {
    let d = AdamWConfig {
        lr: 1e-2,
        ..Default::default()
    };
    vec![
        d,
        AdamWConfig {
            amsgrad: true,
            weight_decay: 0.1,
            ..d
        },
    ]
}

fn rmsprop_configs() -> Vec<RmsPropConfig> {
    let d = RmsPropConfig::default();
    vec![
        d,
        RmsPropConfig {
            centered: true,
            ..d
        },
        RmsPropConfig { momentum: 0.9, ..d },
        RmsPropConfig {
            centered: true,
            momentum: 0.5,
            weight_decay: 0.01,
            ..d
        },
        // Centered with 1 − α ≥ 0.5: the gradient average takes lerp's second form.
        RmsPropConfig {
            maximize: true,
            alpha: 0.3,
            centered: true,
            ..d
        },
    ]
}

#[test]
fn sgd_steps_match_reference() {
    matrix(sgd_configs());
}

#[test]
fn adam_steps_match_reference() {
    matrix(adam_configs());
}

#[test]
fn adamw_steps_match_reference() {
    matrix(adamw_configs());
}

#[test]
fn rmsprop_steps_match_reference() {
    matrix(rmsprop_configs());
}

#[test]
fn hundred_step_trajectories_match_reference() {
    let tiny: Vec<usize> = (0..2000).map(|i| 1 + i % 5).collect();
    for (sizes, slab) in [(vec![40_000, 3, 12_345], Some(16 * 1024)), (tiny, None)] {
        trajectory(
            SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
                ..Default::default()
            },
            &sizes,
            slab,
        );
        trajectory(
            AdamConfig {
                amsgrad: true,
                weight_decay: 0.01,
                ..Default::default()
            },
            &sizes,
            slab,
        );
        trajectory(AdamWConfig::default(), &sizes, slab);
        trajectory(
            RmsPropConfig {
                centered: true,
                momentum: 0.5,
                lr: 1e-3,
                ..Default::default()
            },
            &sizes,
            slab,
        );
    }
}

fn poisoned_step_changes_nothing<C: ReferenceStep>(config: C) {
    let sizes = [1000, 37];
    let (mut set, _) = set_with_grads(&ctx(), &sizes, Some(2048), 1);
    set.upload_params(&data(1037, 2, 1.0)).unwrap();
    let mut opt = config.build(&set).unwrap();
    let clip = Clip::GlobalNorm {
        max_norm: 1.0,
        norm: Norm::L2,
    };
    opt.step(
        &mut set,
        &StepOptions {
            clip,
            ..Default::default()
        },
    )
    .unwrap();
    let before = downloads(&opt, &set);
    for (bad, policy) in [
        (f32::NAN, Nonfinite::Skip),
        (f32::INFINITY, Nonfinite::Skip),
        (f32::NAN, Nonfinite::Error),
    ] {
        let mut grads = data(1037, 3, 1.0);
        grads[1017] = bad;
        set.upload_grads(&grads).unwrap();
        for clip in [Clip::None, clip, Clip::Value { clip_value: 0.1 }] {
            let report = opt
                .step(
                    &mut set,
                    &StepOptions {
                        clip,
                        nonfinite: policy,
                        ..Default::default()
                    },
                )
                .unwrap();
            match policy {
                Nonfinite::Error => assert!(matches!(
                    report.read_blocking(),
                    Err(Error::NonFiniteGradients { .. })
                )),
                _ => assert!(report.read_blocking().unwrap().skipped),
            }
            let after = downloads(&opt, &set);
            assert_bits_eq(&after.0, &before.0, "params after a skipped step");
            for (name, values) in &after.1 {
                assert_bits_eq(values, &before.1[name], "state after a skipped step");
            }
            assert_eq!(
                opt.step_count().unwrap(),
                1,
                "a skipped step advanced the count"
            );
        }
    }
    // Propagate (PyTorch): the NaN reaches the parameters.
    opt.step(
        &mut set,
        &StepOptions {
            clip,
            nonfinite: Nonfinite::Propagate,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(set.download_params().unwrap().iter().all(|p| p.is_nan()));
    assert_eq!(opt.step_count().unwrap(), 2);
}

#[test]
fn skip_leaves_params_states_and_step_count_bit_identical() {
    poisoned_step_changes_nothing(SgdConfig {
        momentum: 0.9,
        ..Default::default()
    });
    poisoned_step_changes_nothing(AdamConfig {
        amsgrad: true,
        ..Default::default()
    });
    poisoned_step_changes_nothing(AdamWConfig::default());
    poisoned_step_changes_nothing(RmsPropConfig {
        centered: true,
        momentum: 0.9,
        ..Default::default()
    });
}

#[test]
fn steps_are_bit_identical_across_runs() {
    let run = || {
        let (mut set, _) = set_with_grads(&ctx(), &[300_007, 5, 4096], Some(256 * 1024), 12);
        set.upload_params(&data(304_108, 3, 1.0)).unwrap();
        let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
        let options = StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: 0.5,
                norm: Norm::L2,
            },
            ..Default::default()
        };
        for _ in 0..3 {
            opt.step(&mut set, &options).unwrap();
        }
        (
            set.download_params().unwrap(),
            opt.state("exp_avg_sq").unwrap(),
        )
    };
    let (a, b) = (run(), run());
    assert_bits_eq(&a.0, &b.0, "params");
    assert_bits_eq(&a.1, &b.1, "exp_avg_sq");
}

#[test]
fn steps_encoded_into_one_encoder_equal_separate_steps() {
    let ctx = ctx();
    let options = [
        StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: 0.5,
                norm: Norm::L2,
            },
            ..Default::default()
        },
        StepOptions {
            clip: Clip::Value { clip_value: 0.01 },
            grad_scale: 2.0,
            ..Default::default()
        },
    ];
    let mut results = Vec::new();
    for batched in [false, true] {
        let (mut set, _) = set_with_grads(&ctx, &[5000, 7], None, 4);
        let mut opt = Adam::new(&set, AdamConfig::default()).unwrap();
        if batched {
            let (device, queue) = ctx.device_queue().unwrap();
            let mut encoder = device.create_command_encoder(&Default::default());
            opt.encode_step(&mut encoder, &mut set, &options[0])
                .unwrap();
            opt.set_learning_rate(1e-2).unwrap();
            opt.encode_step(&mut encoder, &mut set, &options[1])
                .unwrap();
            queue.submit([encoder.finish()]);
        } else {
            opt.step(&mut set, &options[0]).unwrap();
            opt.set_learning_rate(1e-2).unwrap();
            opt.step(&mut set, &options[1]).unwrap();
        }
        assert_eq!(opt.step_count().unwrap(), 2);
        results.push(set.download_params().unwrap());
    }
    assert_bits_eq(&results[0], &results[1], "batched vs separate");
}

#[test]
fn external_tensors_are_updated_in_place() {
    let ctx = ctx();
    let (pb, gb) = (user_storage(&ctx, 1024), user_storage(&ctx, 1024));
    let mut set = set_with_external(&ctx, 13, (&pb, 256), (&gb, 0));
    let p0 = data(113, 1, 1.0);
    let grads = data(113, 2, 1.0);
    set.upload_params(&p0).unwrap();
    set.upload_grads(&grads).unwrap();
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    };
    let mut opt = Sgd::new(&set, config).unwrap();
    opt.step(&mut set, &StepOptions::default()).unwrap();
    let got = set.download_params().unwrap();
    for i in 0..113 {
        assert_eq!(got[i], p0[i] - 0.1 * grads[i], "element {i}");
    }
}

#[test]
fn invalid_hyperparameters_are_typed_errors_like_pytorch() {
    let (set, _) = set_with_grads(&ctx(), &[4], None, 1);
    let bad_sgd = [
        SgdConfig {
            lr: -1.0,
            ..Default::default()
        },
        SgdConfig {
            momentum: -0.1,
            ..Default::default()
        },
        SgdConfig {
            weight_decay: -1.0,
            ..Default::default()
        },
        SgdConfig {
            nesterov: true,
            ..Default::default()
        },
        SgdConfig {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..Default::default()
        },
        SgdConfig {
            lr: f64::NAN,
            ..Default::default()
        },
    ];
    for c in bad_sgd {
        assert!(
            matches!(
                Sgd::new(&set, c),
                Err(Error::InvalidHyperparameter {
                    optimizer: "SGD",
                    ..
                })
            ),
            "{c:?}"
        );
    }
    let err = Sgd::new(
        &set,
        SgdConfig {
            nesterov: true,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("invalid momentum: 0 (Nesterov momentum requires a momentum > 0)"),
        "{err}"
    );
    for c in [
        AdamConfig {
            lr: -1.0,
            ..Default::default()
        },
        AdamConfig {
            eps: -1.0,
            ..Default::default()
        },
        AdamConfig {
            betas: (1.0, 0.999),
            ..Default::default()
        },
        AdamConfig {
            betas: (0.9, -0.1),
            ..Default::default()
        },
        AdamConfig {
            weight_decay: -0.1,
            ..Default::default()
        },
    ] {
        assert!(
            matches!(
                Adam::new(&set, c),
                Err(Error::InvalidHyperparameter {
                    optimizer: "Adam",
                    ..
                })
            ),
            "{c:?}"
        );
        let w = AdamWConfig {
            lr: c.lr,
            eps: c.eps,
            betas: c.betas,
            weight_decay: c.weight_decay,
            ..Default::default()
        };
        assert!(matches!(
            AdamW::new(&set, w),
            Err(Error::InvalidHyperparameter {
                optimizer: "AdamW",
                ..
            })
        ));
    }
    let err = Adam::new(
        &set,
        AdamConfig {
            betas: (1.0, 0.999),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("beta parameter at index 0"),
        "{err}"
    );
    for c in [
        RmsPropConfig {
            lr: -1.0,
            ..Default::default()
        },
        RmsPropConfig {
            eps: -1.0,
            ..Default::default()
        },
        RmsPropConfig {
            momentum: -1.0,
            ..Default::default()
        },
        RmsPropConfig {
            weight_decay: -1.0,
            ..Default::default()
        },
        RmsPropConfig {
            alpha: -1.0,
            ..Default::default()
        },
    ] {
        assert!(
            matches!(
                RmsProp::new(&set, c),
                Err(Error::InvalidHyperparameter {
                    optimizer: "RMSprop",
                    ..
                })
            ),
            "{c:?}"
        );
    }
    let mut opt = Sgd::new(&set, SgdConfig::default()).unwrap();
    assert!(matches!(
        opt.set_learning_rate(-0.5),
        Err(Error::InvalidHyperparameter { name: "lr", .. })
    ));
    assert_eq!(opt.learning_rate(), 1e-3);
}

#[test]
fn bad_step_options_and_foreign_sets_change_nothing() {
    let (mut set, _) = set_with_grads(&ctx(), &[10], None, 1);
    let (mut other, _) = set_with_grads(&ctx(), &[10], None, 2);
    let params = set.download_params().unwrap();
    let mut opt = Adam::new(&set, AdamConfig::default()).unwrap();
    for grad_scale in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = opt
            .step(
                &mut set,
                &StepOptions {
                    grad_scale,
                    ..Default::default()
                },
            )
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidGradScale(_)), "{err}");
    }
    let bad_clip = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 0.0,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    assert!(matches!(
        opt.step(&mut set, &bad_clip),
        Err(Error::InvalidMaxNorm(_))
    ));
    assert!(matches!(
        opt.step(&mut other, &StepOptions::default()),
        Err(Error::ParamSetMismatch { .. })
    ));
    assert_bits_eq(&set.download_params().unwrap(), &params, "params");
    assert_eq!(opt.step_count().unwrap(), 0);
    assert!(matches!(opt.state("nope"), Err(Error::UnknownState { .. })));
}

#[test]
fn defaults_are_pytorchs() {
    let s = SgdConfig::default();
    assert_eq!(
        (
            s.lr,
            s.momentum,
            s.dampening,
            s.weight_decay,
            s.nesterov,
            s.maximize
        ),
        (1e-3, 0.0, 0.0, 0.0, false, false)
    );
    let a = AdamConfig::default();
    assert_eq!(
        (a.lr, a.betas, a.eps, a.weight_decay, a.amsgrad),
        (1e-3, (0.9, 0.999), 1e-8, 0.0, false)
    );
    assert_eq!(AdamWConfig::default().weight_decay, 1e-2);
    let r = RmsPropConfig::default();
    assert_eq!(
        (r.lr, r.alpha, r.eps, r.weight_decay, r.momentum, r.centered),
        (1e-2, 0.99, 1e-8, 0.0, 0.0, false)
    );
    let o = StepOptions::default();
    assert_eq!(
        (o.clip, o.grad_scale, o.nonfinite),
        (Clip::None, 1.0, Nonfinite::Skip)
    );
}

#[test]
fn a_step_without_a_norm_reports_no_tensor_norms_on_every_backend() {
    let sizes = [300, 7, 4096];
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, grads) = set_with_grads(&ctx, &sizes, None, 8);
        let mut opt = Sgd::new(&set, SgdConfig::default()).unwrap();
        // A clipped step first: its per-tensor norms are in the report, of g / grad_scale.
        let clipped = StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: 1.0,
                norm: Norm::L2,
            },
            grad_scale: 4.0,
            ..Default::default()
        };
        let report = opt.step(&mut set, &clipped).unwrap();
        assert!(report.has_norm());
        let scaled: Vec<f32> = grads.iter().map(|g| g / 4.0).collect();
        let want = reference::per_tensor_norms(&split(&scaled, &sizes), 2.0);
        let got = report.tensor_norms_blocking().unwrap();
        assert_close(
            &got,
            &want,
            clipstep::consts::tolerance::NORM_REL,
            f64::MIN_POSITIVE,
            "step report",
        );
        // Then a step that computes no norm: the report holds none, not the last step's.
        let plain = StepOptions {
            nonfinite: Nonfinite::Propagate,
            ..Default::default()
        };
        let report = opt.step(&mut set, &plain).unwrap();
        assert!(!report.has_norm(), "{}", ctx.describe());
        assert!(
            report.tensor_norms_blocking().unwrap().is_empty(),
            "{}",
            ctx.describe()
        );
        let state = report.read_blocking().unwrap();
        assert!(state.total_norm.is_nan() && !state.nonfinite && !state.skipped);
        assert_eq!((state.clip_coef, state.step), (1.0, 2));
    }
}

/// Which RMSprop operation a device rounds differently (a measurement, run with
/// --ignored --nocapture): two steps on the GPU, each compared bit for bit with the f32
/// formula applied on the host to the GPU's own previous states.
#[test]
#[ignore]
fn rmsprop_operations_bit_for_bit() {
    let ctx = ctx();
    let n = 1 << 16;
    let (mut set, grads) = set_with_grads(&ctx, &[n], None, 5);
    let p0 = data(n, 6, 1.0);
    set.upload_params(&p0).unwrap();
    let config = RmsPropConfig {
        momentum: 0.9,
        ..Default::default()
    };
    let mut opt = RmsProp::new(&set, config).unwrap();
    let (a, mu, eps, neg_lr) = (0.99f32, 0.9f32, 1e-8f32, -0.01f32);
    let one_minus_a = (1.0 - 0.99f64) as f32;
    let (mut s0, mut b0, mut p) = (vec![0.0f32; n], vec![0.0f32; n], p0);
    for step in 0..2 {
        opt.step(&mut set, &StepOptions::default()).unwrap();
        let (s, b) = (
            opt.state("square_avg").unwrap(),
            opt.state("momentum_buffer").unwrap(),
        );
        let got_p = set.download_params().unwrap();
        let (mut ds, mut dsqrt, mut dq, mut db, mut dp) = (0, 0, 0, 0, 0);
        for i in 0..n {
            let g = grads[i];
            let want_s = s0[i] * a + one_minus_a * g * g;
            ds += usize::from(want_s.to_bits() != s[i].to_bits());
            // From the GPU's s on: each later op given the GPU's own inputs.
            let avg = s[i].sqrt() + eps;
            let q = g / avg;
            let want_b = b0[i] * mu + q;
            db += usize::from(want_b.to_bits() != b[i].to_bits());
            dq += usize::from((b[i] - b0[i] * mu).to_bits() != q.to_bits());
            dsqrt += usize::from(step == 0 && (b[i] / 1.0).to_bits() != q.to_bits());
            let want_p = p[i] + neg_lr * b[i];
            dp += usize::from(want_p.to_bits() != got_p[i].to_bits());
        }
        eprintln!(
            "{}: step {step} of {n}: square_avg off {ds}, momentum off {db} (its quotient \
             term off {dq}, step-0 b = g/avg off {dsqrt}), params off {dp}",
            ctx.describe()
        );
        (s0, b0, p) = (s, b, got_p);
    }
}
