//! Every update rule on the device against the CPU reference. The matrix (every clip and
//! loss scale, several slabs, 2,000 tensors) and the 100-step trajectories run each
//! registered rule's examples (`RuleConfig::examples`, through `clipstep::rules`), so a new
//! rule is tested here with no line added; then what rules share (a skipped step changes
//! nothing, bit-identical reruns, steps in one encoder, PyTorch's checks and defaults) and
//! what some rules add (Adagrad's initial accumulator, Lion's sign, LARS's and LAMB's trust
//! ratio groups).

mod common;

use clipstep::consts::tolerance::{NORM_REL, TRUST_STEP_REL};
use clipstep::*;
use common::harness::three_groups;
use common::steps::*;
use common::*;

/// Runs `check` on every registered rule's examples.
struct EveryRule(fn(&str) -> bool, Check);

/// What [`EveryRule`] runs per rule: the matrix or the trajectories.
#[derive(Clone, Copy)]
enum Check {
    Matrix,
    Trajectories,
}

impl RuleVisitor for EveryRule {
    fn visit<C: RuleConfig>(&mut self) {
        // A rule of matrices refuses these vectors: tests/muon.rs runs the same checks.
        if !(self.0)(C::NAME) || C::MATRICES {
            return;
        }
        match self.1 {
            Check::Matrix => matrix(C::examples()),
            // The representative example: many options at once.
            Check::Trajectories => {
                let tiny: Vec<usize> = (0..2000).map(|i| 1 + i % 5).collect();
                // A tensor of more than SERIAL_FOLD_CHUNKS (4) chunks of 16,384: folded by a
                // workgroup of its own (the norm's and the trust ratio's fold).
                let big = vec![5 * 16_384 + 7, 3];
                let layouts = [
                    (vec![40_000, 3, 12_345], Some(16 * 1024)),
                    (tiny, None),
                    (big, None),
                ];
                for (sizes, slab) in layouts {
                    trajectory(C::examples().remove(0), &sizes, slab);
                }
            }
        }
    }
}

/// The rules PyTorch has (the others, Optax's, in their own tests: the two halves run in
/// parallel).
fn pytorchs(name: &str) -> bool {
    !optaxs(name)
}

/// The rules that are Optax's.
fn optaxs(name: &str) -> bool {
    ["Lion", "LARS", "LAMB"].contains(&name)
}

#[test]
fn pytorchs_rules_match_the_reference_under_every_clip() {
    for_each_rule(&mut EveryRule(pytorchs, Check::Matrix));
}

#[test]
fn optaxs_rules_match_the_reference_under_every_clip() {
    for_each_rule(&mut EveryRule(optaxs, Check::Matrix));
}

#[test]
fn pytorchs_rules_follow_the_reference_for_a_hundred_steps() {
    for_each_rule(&mut EveryRule(pytorchs, Check::Trajectories));
}

#[test]
fn optaxs_rules_follow_the_reference_for_a_hundred_steps() {
    for_each_rule(&mut EveryRule(optaxs, Check::Trajectories));
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
                opt.states().step_count().unwrap(),
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
    assert_eq!(opt.states().step_count().unwrap(), 2);
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
            opt.states().get("exp_avg_sq").unwrap(),
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
        assert_eq!(opt.states().step_count().unwrap(), 2);
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
    assert_eq!(opt.states().step_count().unwrap(), 0);
    assert!(matches!(
        opt.states().get("nope"),
        Err(Error::UnknownState { .. })
    ));
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
        assert_close(&got, &want, NORM_REL, f64::MIN_POSITIVE, "step report");
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
        assert_eq!(opt.states().get("sum").unwrap(), want, "{}", ctx.describe());
        // A checkpoint of a set without the last tensor, loaded with fresh state for it.
        let small = ctx.param_set(&specs(&[70, 1])).unwrap();
        let groups = three_groups(&small, |g| AdagradConfig {
            initial_accumulator_value: [7.0, 7.0, 7.0][g],
            ..Default::default()
        });
        let saved = Adagrad::with_groups(&small, groups)
            .unwrap()
            .states()
            .save()
            .unwrap();
        let options = LoadOptions {
            missing: MissingTensors::FreshState,
            ..Default::default()
        };
        opt.checkpoint().load_with(&saved, &options).unwrap();
        let mut want = vec![7.0; 71];
        want.extend(vec![2.0; 300]);
        assert_eq!(opt.states().get("sum").unwrap(), want, "{}", ctx.describe());
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

/// ASGD with t0 = 0 and no decay (λ = 0: η = lr) averages the iterates from step 2 on:
/// `ax` after step t is the mean of the parameters after steps 2..=t, on GPU and CPU.
#[test]
fn asgd_averages_the_iterates_after_t0() {
    for ctx in [ctx(), Context::cpu()] {
        let n = 300;
        let (mut set, _) = set_with_grads(&ctx, &[n], None, 1);
        set.upload_params(&data(n, 2, 1.0)).unwrap();
        let config = AsgdConfig {
            lr: 0.1,
            lambd: 0.0,
            t0: 0.0,
            ..Default::default()
        };
        let mut opt = config.build(&set).unwrap();
        let mut iterates: Vec<Vec<f32>> = Vec::new();
        for step in 1..=6u64 {
            set.upload_grads(&data(n, 10 + step, 1.0)).unwrap();
            opt.step(&mut set, &StepOptions::default()).unwrap();
            iterates.push(set.download_params().unwrap());
            let ax = opt.states().get("ax").unwrap();
            let since = &iterates[iterates.len().min(2) - 1..];
            for i in 0..n {
                let mean = since.iter().map(|p| f64::from(p[i])).sum::<f64>() / since.len() as f64;
                let err = (f64::from(ax[i]) - mean).abs();
                assert!(
                    err <= 1e-5 * mean.abs().max(1.0),
                    "{} step {step} element {i}: ax {} against the mean {mean}",
                    ctx.describe(),
                    ax[i]
                );
            }
        }
        // PyTorch accepts a NaN t0, and its max(1, step − t0) is then 1: ax follows p.
        let nan_t0 = AsgdConfig {
            t0: f64::NAN,
            ..config
        };
        let mut opt = nan_t0.build(&set).unwrap();
        for step in 1..=3u64 {
            set.upload_grads(&data(n, 20 + step, 1.0)).unwrap();
            opt.step(&mut set, &StepOptions::default()).unwrap();
            let ax = opt.states().get("ax").unwrap();
            assert_eq!(
                ax,
                set.download_params().unwrap(),
                "{} NaN t0",
                ctx.describe()
            );
        }
    }
}

/// Rprop grows a step size by etaplus while the gradient keeps its sign (up to the
/// bound), then on a flip shrinks it by etaminus and leaves the parameter alone.
#[test]
fn rprop_grows_and_shrinks_its_step_sizes() {
    for ctx in [ctx(), Context::cpu()] {
        let n = 260;
        let (mut set, _) = set_with_grads(&ctx, &[n], None, 1);
        set.upload_params(&vec![0.0; n]).unwrap();
        let config = RpropConfig {
            lr: 0.25,
            etas: (0.5, 2.0),
            step_sizes: (1e-3, 1.5),
            ..Default::default()
        };
        let mut opt = config.build(&set).unwrap();
        // Gradient +1 on even elements, −3 on odd ones: each moves against its sign.
        let sign: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let grads: Vec<f32> = sign
            .iter()
            .map(|s| if *s > 0.0 { 1.0 } else { -3.0 })
            .collect();
        set.upload_grads(&grads).unwrap();
        // Step sizes 0.25, 0.5, 1.0, then 1.5 (the bound): the parameter moves by their sum.
        let mut moved = 0.0;
        for size in [0.25f32, 0.5, 1.0, 1.5] {
            opt.step(&mut set, &StepOptions::default()).unwrap();
            moved += size;
            let params = set.download_params().unwrap();
            let sizes = opt.states().get("step_size").unwrap();
            for i in 0..n {
                assert_eq!(sizes[i], size, "{} element {i}", ctx.describe());
                assert_eq!(
                    params[i],
                    -sign[i] * moved,
                    "{} element {i}",
                    ctx.describe()
                );
            }
        }
        // The sign flips: the step size halves, the parameter stays, prev becomes 0.
        let flipped: Vec<f32> = grads.iter().map(|g| -g).collect();
        set.upload_grads(&flipped).unwrap();
        opt.step(&mut set, &StepOptions::default()).unwrap();
        let params = set.download_params().unwrap();
        assert_eq!(opt.states().get("step_size").unwrap(), vec![0.75; n]);
        assert_eq!(opt.states().get("prev").unwrap(), vec![0.0; n]);
        for i in 0..n {
            assert_eq!(
                params[i],
                -sign[i] * moved,
                "{} element {i}",
                ctx.describe()
            );
        }
    }
}

/// RAdam's first steps are momentum steps; from the first step whose ρt passes 5 (step 6
/// for β2 = 0.999) the step is adaptive and rectified: under a constant gradient g it
/// moves by lr·|g| up to step 5, then by about lr·r6 (sqrt(v̂) = |g|).
#[test]
fn radam_switches_to_the_rectified_step_at_step_6() {
    let r6 = {
        let (b2, t) = (0.999f64, 6.0f64);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho = rho_inf - 2.0 * t * b2.powf(t) / (1.0 - b2.powf(t));
        ((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)).sqrt()
    };
    for ctx in [ctx(), Context::cpu()] {
        let n = 100;
        let (mut set, _) = set_with_grads(&ctx, &[n], None, 1);
        set.upload_params(&vec![0.0; n]).unwrap();
        set.upload_grads(&vec![2.0; n]).unwrap();
        let config = RAdamConfig {
            lr: 1e-2,
            ..Default::default()
        };
        let mut opt = config.build(&set).unwrap();
        let mut before = 0.0f64;
        for step in 1..=7 {
            opt.step(&mut set, &StepOptions::default()).unwrap();
            let p = f64::from(set.download_params().unwrap()[0]);
            let moved = before - p;
            let want = if step <= 5 { 2e-2 } else { 1e-2 * r6 };
            // Each parameter is an f32: its move is known to 2 of its ulp.
            let tol = 1e-5 * want + 2.0 * f64::from(f32::EPSILON) * before.abs().max(p.abs());
            if step <= 6 {
                assert!(
                    (moved - want).abs() <= tol,
                    "{} step {step}: moved {moved}, want {want}",
                    ctx.describe()
                );
            } else {
                // Step 7's factor r7 > r6, still a fraction of the momentum step.
                assert!(
                    moved > 1e-2 * r6 && moved < 2e-2,
                    "{} step 7: {moved}",
                    ctx.describe()
                );
            }
            before = p;
        }
    }
}

/// RAdam, NAdam, ASGD and Rprop refuse what PyTorch refuses, with PyTorch's names; their
/// defaults are PyTorch's.
#[test]
fn radam_nadam_asgd_and_rprop_check_their_hyperparameters_like_pytorch() {
    let (set, _) = set_with_grads(&ctx(), &[10], None, 1);
    let d = NAdamConfig::default();
    assert_eq!(
        (d.lr, d.betas, d.eps, d.weight_decay, d.momentum_decay),
        (2e-3, (0.9, 0.999), 1e-8, 0.0, 4e-3)
    );
    for (name, c) in [
        ("lr", NAdamConfig { lr: -1.0, ..d }),
        (
            "beta parameter at index 0",
            NAdamConfig {
                betas: (1.0, 0.999),
                ..d
            },
        ),
        (
            "momentum_decay value",
            NAdamConfig {
                momentum_decay: -1e-3,
                ..d
            },
        ),
    ] {
        let err = NAdam::new(&set, c).err().unwrap();
        assert!(
            matches!(err, Error::InvalidHyperparameter { optimizer: "NAdam", name: n, .. } if n == name),
            "{err}"
        );
    }
    let d = RAdamConfig::default();
    assert_eq!(
        (d.lr, d.betas, d.eps, d.weight_decay),
        (1e-3, (0.9, 0.999), 1e-8, 0.0)
    );
    for (name, c) in [
        ("lr", RAdamConfig { lr: -1.0, ..d }),
        ("eps", RAdamConfig { eps: -1.0, ..d }),
        (
            "beta parameter at index 1",
            RAdamConfig {
                betas: (0.9, 1.0),
                ..d
            },
        ),
        (
            "weight_decay",
            RAdamConfig {
                weight_decay: -0.1,
                ..d
            },
        ),
    ] {
        let err = RAdam::new(&set, c).err().unwrap();
        assert!(
            matches!(err, Error::InvalidHyperparameter { optimizer: "RAdam", name: n, .. } if n == name),
            "{err}"
        );
    }
    let d = AsgdConfig::default();
    assert_eq!((d.lr, d.lambd, d.alpha, d.t0), (1e-2, 1e-4, 0.75, 1e6));
    for (name, c) in [
        ("lr", AsgdConfig { lr: -1.0, ..d }),
        ("lambd value", AsgdConfig { lambd: -1.0, ..d }),
        ("alpha value", AsgdConfig { alpha: -1.0, ..d }),
        (
            "weight_decay value",
            AsgdConfig {
                weight_decay: f64::NAN,
                ..d
            },
        ),
    ] {
        let err = Asgd::new(&set, c).err().unwrap();
        assert!(
            matches!(err, Error::InvalidHyperparameter { optimizer: "ASGD", name: n, .. } if n == name),
            "{err}"
        );
    }
    let d = RpropConfig::default();
    assert_eq!(
        (d.lr, d.etas, d.step_sizes),
        (1e-2, (0.5, 1.2), (1e-6, 50.0))
    );
    for (name, c) in [
        ("lr", RpropConfig { lr: -1.0, ..d }),
        (
            "etas",
            RpropConfig {
                etas: (1.0, 1.2),
                ..d
            },
        ),
        (
            "etas",
            RpropConfig {
                etas: (0.5, 1.0),
                ..d
            },
        ),
        (
            "etas",
            RpropConfig {
                etas: (0.0, 1.2),
                ..d
            },
        ),
        (
            "step_sizes",
            RpropConfig {
                step_sizes: (f64::NAN, 1.0),
                ..d
            },
        ),
    ] {
        let err = Rprop::new(&set, c).err().unwrap();
        assert!(
            matches!(err, Error::InvalidHyperparameter { optimizer: "Rprop", name: n, .. } if n == name),
            "{err}"
        );
    }
}

#[test]
fn adagrad_and_lion_check_their_hyperparameters_like_pytorch_and_optax() {
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
        assert!(
            (moved - want).abs() < TRUST_STEP_REL * want,
            "{moved} vs {want}"
        );
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
fn lars_and_lamb_check_their_hyperparameters_like_optax() {
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
            opt.states().get("exp_avg").unwrap(),
            opt.states().get("exp_avg_sq").unwrap(),
        );
        let mut poisoned = grads.clone();
        poisoned[501] = f32::NAN;
        set.upload_grads(&poisoned).unwrap();
        let state = opt.step(&mut set, &StepOptions::default()).unwrap();
        assert!(state.read_blocking().unwrap().skipped);
        assert_bits_eq(&set.download_params().unwrap(), &before.0, "params");
        assert_bits_eq(&opt.states().get("exp_avg").unwrap(), &before.1, "exp_avg");
        assert_bits_eq(
            &opt.states().get("exp_avg_sq").unwrap(),
            &before.2,
            "exp_avg_sq",
        );
        assert_eq!(opt.states().step_count().unwrap(), 1);
    }
}

mod groups {
    //! Parameter groups: against PyTorch's `param_groups` (golden fixture), against an
    //! independent per-tensor reference on awkward layouts (several slabs, many tensors), on
    //! every rule; per-group learning rates; checkpoints; typed errors for bad groups.

    use crate::common::harness::three_groups;
    use crate::common::*;
    use clipstep::consts::tolerance::{TRAJECTORY_FLOOR, TRAJECTORY_REL};
    use clipstep::*;
    use serde_json::Value;

    fn fixture() -> Value {
        let text = include_str!("../fixtures/pytorch.json");
        serde_json::from_str::<Value>(text).unwrap()["groups"].clone()
    }

    fn f32s(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    /// AdamW with three groups (its own lr and weight decay each; the embedding with other
    /// betas and left out of the global norm) follows PyTorch's trajectory on GPU and CPU.
    #[test]
    fn groups_follow_pytorch() {
        let f = fixture();
        let names = ["w", "b", "emb"];
        let shape = |n: &str| -> Vec<usize> {
            f["shapes"][n]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect()
        };
        for ctx in [ctx(), Context::cpu()] {
            let specs: Vec<TensorSpec> = names
                .iter()
                .map(|&n| TensorSpec::new(n, shape(n)))
                .collect();
            let mut set = ctx.param_set(&specs).unwrap();
            for n in names {
                set.upload_param(n, &f32s(&f["params"][n])).unwrap();
            }
            let groups: Vec<ParamGroup<AdamWConfig>> = f["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    let tensors: Vec<String> = g["tensors"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string())
                        .collect();
                    let mut config = AdamWConfig {
                        lr: g["lr"].as_f64().unwrap(),
                        weight_decay: g["weight_decay"].as_f64().unwrap(),
                        ..Default::default()
                    };
                    if let Some(b) = g.get("betas") {
                        config.betas = (b[0].as_f64().unwrap(), b[1].as_f64().unwrap());
                    }
                    let group = ParamGroup::new(tensors, config);
                    if g["in_norm"].as_bool().unwrap() {
                        group
                    } else {
                        group.excluded_from_norm()
                    }
                })
                .collect();
            let mut opt = AdamW::with_groups(&set, groups).unwrap();
            let options = StepOptions {
                clip: Clip::GlobalNorm {
                    max_norm: f["max_norm"].as_f64().unwrap() as f32,
                    norm: Norm::L2,
                },
                ..Default::default()
            };
            for (k, step) in f["steps"].as_array().unwrap().iter().enumerate() {
                for n in names {
                    set.upload_grad(n, &f32s(&step["grads"][n])).unwrap();
                }
                let state = opt
                    .step(&mut set, &options)
                    .unwrap()
                    .read_blocking()
                    .unwrap();
                let total = step["total_norm"].as_f64().unwrap() as f32;
                assert_rel(
                    state.total_norm,
                    total,
                    clipstep::consts::tolerance::NORM_REL,
                    &format!("step {k} total norm"),
                );
                for n in names {
                    assert_trajectory(
                        &set.download_param(n).unwrap(),
                        &f32s(&step["params"][n]),
                        &format!("{} step {k} {n}", ctx.describe()),
                    );
                }
            }
        }
    }

    /// Asserts `got` is within the trajectory tolerance of `want`.
    fn assert_trajectory(got: &[f32], want: &[f32], what: &str) {
        assert_close(got, want, f64::from(TRAJECTORY_REL), TRAJECTORY_FLOOR, what);
    }

    /// One tensor's reference update: (group, params, effective grads, states, offset).
    type RuleStep<'a> = dyn Fn(usize, &mut [f32], &[f32], &mut Vec<Vec<f32>>, usize) + 'a;

    /// What a group changes, computed tensor by tensor from the reference: the norm over the
    /// tensors in the norm, each tensor's gradient clipped unless its group is not, the
    /// group's own hyperparameters.
    struct Expected {
        params: Vec<f32>,
        states: Vec<Vec<f32>>,
    }

    /// Three groups over many tensors in several slabs: every rule on the GPU agrees with
    /// the per-tensor reference.
    #[test]
    fn groups_on_many_tensors_and_slabs_match_the_reference() {
        let ctx = ctx();
        let sizes: Vec<usize> = (0..40)
            .map(|i| [1, 63, 64, 65, 257, 1000, 4099][i % 7])
            .collect();
        let (mut set, grads) = set_with_grads(&ctx, &sizes, Some(16 << 10), 3);
        assert!(set.num_slabs() > 2);
        let n: usize = sizes.iter().sum();
        let params = data(n, 4, 1.0);
        set.upload_params(&params).unwrap();
        // Group of tensor i: i % 3. Group 1 is out of the norm, group 2 unclipped.
        let lrs = [1e-2, 5e-2, 2e-3];
        let wds = [0.0, 0.1, 0.01];
        let options = StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: 0.5,
                norm: Norm::L2,
            },
            grad_scale: 2.0,
            ..Default::default()
        };
        // The clip coefficient over groups 0 and 2 only.
        let counted: Vec<&[f32]> = split(&grads, &sizes)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 1)
            .map(|(_, g)| g)
            .collect();
        let total = reference::global_norm(&counted, 2.0) / 2.0;
        let coef = reference::clip_coef(total, 0.5);
        let expected = |rule: &RuleStep<'_>| {
            let mut p = params.clone();
            let mut states: Vec<Vec<f32>> = vec![vec![0.0; n]; 3];
            let mut at = 0;
            for (i, &len) in sizes.iter().enumerate() {
                let g: Vec<f32> = grads[at..at + len]
                    .iter()
                    .map(|&x| {
                        reference::effective_grad(x, 0.5, if i % 3 == 2 { 1.0 } else { coef }, None)
                    })
                    .collect();
                rule(i % 3, &mut p[at..at + len], &g, &mut states, at);
                at += len;
            }
            Expected { params: p, states }
        };

        // AdamW: per-group lr, weight decay, and betas for group 2, whose 1 − β1 ≥ 0.5 takes
        // lerp's other form (compiled in for the step because one group needs it).
        let betas = |g: usize| if g == 2 { (0.4, 0.99) } else { (0.9, 0.999) };
        let groups = three_groups(&set, |g| AdamWConfig {
            lr: lrs[g],
            weight_decay: wds[g],
            betas: betas(g),
            ..Default::default()
        });
        let mut opt = AdamW::with_groups(&set, groups).unwrap();
        let state = opt
            .step(&mut set, &options)
            .unwrap()
            .read_blocking()
            .unwrap();
        assert_rel(
            state.total_norm,
            total,
            clipstep::consts::tolerance::NORM_REL,
            "total norm over groups 0 and 2",
        );
        let want = expected(&|g, p, grad, s, at| {
            let len = p.len();
            let [m, v, _] = &mut s[..] else {
                unreachable!()
            };
            let states = [Some(&mut m[at..at + len]), Some(&mut v[at..at + len]), None];
            reference::adam(
                TensorStep {
                    params: p,
                    grads: grad,
                    shape: &[],
                    states,
                },
                1,
                lrs[g],
                betas(g),
                1e-8,
                wds[g],
                true,
                false,
                true,
            );
        });
        assert_trajectory(
            &set.download_params().unwrap(),
            &want.params,
            "AdamW params",
        );
        assert_trajectory(
            &opt.states().get("exp_avg").unwrap(),
            &want.states[0],
            "exp_avg",
        );
        // Step 1's exp_avg is lerp(0, g, 1 − β1): each group's form, to the bit.
        assert_bits_eq(
            &opt.states().get("exp_avg").unwrap(),
            &want.states[0],
            "exp_avg, each group's lerp form",
        );

        // SGD with momentum, per-group lr and weight decay.
        set.upload_params(&params).unwrap();
        let groups = three_groups(&set, |g| SgdConfig {
            lr: lrs[g],
            momentum: 0.9,
            weight_decay: wds[g],
            ..Default::default()
        });
        let mut sgd = Sgd::with_groups(&set, groups).unwrap();
        sgd.step(&mut set, &options).unwrap();
        let want = expected(&|g, p, grad, s, at| {
            let len = p.len();
            let states = [Some(&mut s[0][at..at + len]), None, None];
            reference::sgd(
                TensorStep {
                    params: p,
                    grads: grad,
                    shape: &[],
                    states,
                },
                true,
                lrs[g],
                0.9,
                0.0,
                wds[g],
                false,
                false,
            );
        });
        assert_trajectory(&set.download_params().unwrap(), &want.params, "SGD params");

        // RMSprop, per-group lr.
        set.upload_params(&params).unwrap();
        let groups = three_groups(&set, |g| RmsPropConfig {
            lr: lrs[g],
            ..Default::default()
        });
        let mut rms = RmsProp::with_groups(&set, groups).unwrap();
        rms.step(&mut set, &options).unwrap();
        let want = expected(&|g, p, grad, s, at| {
            let len = p.len();
            let states = [Some(&mut s[0][at..at + len]), None, None];
            reference::rmsprop(
                TensorStep {
                    params: p,
                    grads: grad,
                    shape: &[],
                    states,
                },
                lrs[g],
                0.99,
                1e-8,
                0.0,
                0.0,
                false,
            );
        });
        assert_trajectory(
            &set.download_params().unwrap(),
            &want.params,
            "RMSprop params",
        );
    }

    /// Slabs that each hold one group: the kernels read a slab all of group 0 at the constant
    /// group index 0 and gather every other slab's group per vec4 (`SHAPE_GROUP_GATHER`), so
    /// a slab all of group 1, and group 0 listed second, must still get their own rows.
    #[test]
    fn slabs_of_one_group_each_read_their_own_group() {
        let ctx = ctx();
        // One tensor per 16 KiB slab (4096 elements), then a slab that holds both groups.
        let sizes = [4096, 4096, 4096, 1000, 2000];
        let (mut set, grads) = set_with_grads(&ctx, &sizes, Some(16 << 10), 7);
        assert_eq!(set.num_slabs(), 4);
        let n: usize = sizes.iter().sum();
        let params = data(n, 8, 1.0);
        set.upload_params(&params).unwrap();
        // Group 0: t1 and t3; group 1: t0, t2 and t4.
        let group_of = |t: usize| usize::from(t.is_multiple_of(2));
        let (lrs, wds) = ([1e-2, 7e-2], [0.0, 0.3]);
        let members = |g: usize| -> Vec<String> {
            (0..sizes.len())
                .filter(|&t| group_of(t) == g)
                .map(|t| format!("t{t}"))
                .collect()
        };
        let config = |g: usize| AdamWConfig {
            lr: lrs[g],
            weight_decay: wds[g],
            ..Default::default()
        };
        let groups = vec![
            ParamGroup::new(members(0), config(0)),
            ParamGroup::new(members(1), config(1)),
        ];
        let mut opt = AdamW::with_groups(&set, groups).unwrap();
        opt.step(&mut set, &StepOptions::default()).unwrap();

        let mut want = params.clone();
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let mut at = 0;
        for (t, &len) in sizes.iter().enumerate() {
            let g = group_of(t);
            let r = at..at + len;
            let states = [Some(&mut m[r.clone()]), Some(&mut v[r.clone()]), None];
            reference::adam(
                TensorStep {
                    params: &mut want[r.clone()],
                    grads: &grads[r],
                    shape: &[],
                    states,
                },
                1,
                lrs[g],
                (0.9, 0.999),
                1e-8,
                wds[g],
                true,
                false,
                true,
            );
            at += len;
        }
        assert_trajectory(
            &set.download_params().unwrap(),
            &want,
            "AdamW params, slabs of one group",
        );
    }

    /// One group's learning rate changes in stream; the others keep theirs; the GPU and the
    /// CPU backend agree; checkpoints carry every group's hyperparameters.
    #[test]
    fn group_learning_rates_change_in_stream_and_survive_checkpoints() {
        for ctx in [ctx(), Context::cpu()] {
            let (mut set, _) = set_with_grads(&ctx, &[100, 7], None, 5);
            let params = set.download_params().unwrap();
            let groups = vec![
                ParamGroup::new(
                    ["t0"],
                    SgdConfig {
                        lr: 0.1,
                        ..Default::default()
                    },
                ),
                ParamGroup::new(
                    ["t1"],
                    SgdConfig {
                        lr: 0.2,
                        ..Default::default()
                    },
                ),
            ];
            let mut opt = Sgd::with_groups(&set, groups).unwrap();
            assert_eq!(opt.groups().len(), 2);
            opt.groups().set_learning_rate(1, 0.0).unwrap();
            assert_eq!(opt.groups().learning_rate(0).unwrap(), 0.1);
            opt.step(&mut set, &StepOptions::default()).unwrap();
            let after = set.download_params().unwrap();
            assert_ne!(after[..100], params[..100], "group 0 moved");
            assert_bits_eq(&after[100..], &params[100..], "group 1 has lr 0");
            assert!(matches!(
                opt.groups().set_learning_rate(2, 0.1),
                Err(Error::InvalidGroups(_))
            ));
            assert!(matches!(
                opt.groups().set_learning_rate(0, -1.0),
                Err(Error::InvalidHyperparameter { .. })
            ));

            let bytes = opt.states().save().unwrap();
            let fresh_groups = vec![
                ParamGroup::new(["t0"], SgdConfig::default()),
                ParamGroup::new(["t1"], SgdConfig::default()),
            ];
            let mut fresh = Sgd::with_groups(&set, fresh_groups).unwrap();
            fresh.checkpoint().load(&bytes).unwrap();
            assert_eq!(fresh.groups().learning_rate(0).unwrap(), 0.1);
            assert_eq!(fresh.groups().learning_rate(1).unwrap(), 0.0);
            // Another group count is refused and changes nothing.
            let mut single = Sgd::new(&set, SgdConfig::default()).unwrap();
            let err = single.checkpoint().load(&bytes).unwrap_err();
            assert!(err.to_string().contains("2 parameter groups"), "{err}");
            assert_eq!(single.learning_rate(), SgdConfig::default().lr);
        }
    }

    /// Groups that differ in an option that adds a state (PyTorch accepts them): a state
    /// some groups keep lives for their tensors only (`States::bytes`), each tensor steps as
    /// under an optimizer whose every group had its group's configuration (to the bit), and
    /// checkpoints hold a state exactly for the tensors that keep it, as PyTorch's state
    /// dict does.
    mod states_per_group {
        use super::*;

        /// Builds the optimizer under test from a set and its groups.
        type Build<C> = dyn Fn(&ParamSet, Vec<ParamGroup<C>>) -> Box<dyn Optimizer>;

        /// Tensors of 40 awkward sizes over several 16 KiB slabs, in three groups (i % 3).
        const SIZES: [usize; 7] = [1, 63, 64, 65, 257, 1000, 4099];

        fn sizes() -> Vec<usize> {
            (0..40).map(|i| SIZES[i % 7]).collect()
        }

        /// A fresh set of `sizes()` on `ctx` with parameters from seed 4.
        fn fresh_set(ctx: &Context) -> ParamSet {
            let (mut set, _) = set_with_grads(ctx, &sizes(), Some(16 << 10), 3);
            let n: usize = sizes().iter().sum();
            set.upload_params(&data(n, 4, 1.0)).unwrap();
            set
        }

        /// Runs `steps` clipped steps of the optimizer `build` makes with groups configured
        /// by `config`, on a fresh set; returns the set and the optimizer.
        fn run<C>(
            ctx: &Context, config: &dyn Fn(usize) -> C, build: &Build<C>,
        ) -> (ParamSet, Box<dyn Optimizer>) {
            let mut set = fresh_set(ctx);
            let mut opt = build(&set, three_groups(&set, config));
            let n: usize = sizes().iter().sum();
            let options = StepOptions {
                clip: Clip::GlobalNorm {
                    max_norm: 0.5,
                    norm: Norm::L2,
                },
                ..Default::default()
            };
            for step in 0..3 {
                set.upload_grads(&data(n, 10 + step, 1.0)).unwrap();
                opt.step(&mut set, &options).unwrap();
            }
            (set, opt)
        }

        /// The mixed optimizer against one uniform optimizer per group (every group with
        /// that group's configuration): each tensor's parameters and each state it keeps
        /// equal the uniform run's of its group, bit for bit; the others keep none.
        fn check_against_uniform<C>(what: &str, config: &dyn Fn(usize) -> C, build: &Build<C>) {
            for ctx in [ctx(), Context::cpu()] {
                let what = format!("{what} on {}", ctx.describe());
                let (mixed_set, mixed) = run(&ctx, config, build);
                let tensors: Vec<String> =
                    mixed_set.tensors().iter().map(|t| t.name.clone()).collect();
                let (mut uniform_bytes, mut uniform_names) = (Vec::new(), Vec::new());
                for g in 0..3 {
                    let (set, uniform) = run(&ctx, &|_| config(g), build);
                    uniform_bytes.push(uniform.states().bytes());
                    uniform_names.push(uniform.states().names());
                    let members: Vec<usize> = (g..tensors.len()).step_by(3).collect();
                    for &t in &members {
                        let name = &tensors[t];
                        assert_bits_eq(
                            &mixed_set.download_param(name).unwrap(),
                            &set.download_param(name).unwrap(),
                            &format!("{what}: {name} (group {g})"),
                        );
                    }
                    for state in uniform.states().names() {
                        let kept = mixed.states().tensors(state).unwrap();
                        let in_group = |t: &usize| kept.contains(&tensors[*t]);
                        assert!(
                            members.iter().all(in_group),
                            "{what}: group {g} keeps {state}, its tensors must: {kept:?}"
                        );
                        // The uniform run's values of group g's tensors, in set order.
                        let all = uniform.states().get(state).unwrap();
                        let mixed_all = mixed.states().get(state).unwrap();
                        let (mut at, mut mixed_at) = (0, 0);
                        for (t, spec) in mixed_set.tensors().iter().enumerate() {
                            let n = spec.numel as usize;
                            if kept.contains(&tensors[t]) {
                                if t % 3 == g {
                                    assert_bits_eq(
                                        &mixed_all[mixed_at..mixed_at + n],
                                        &all[at..at + n],
                                        &format!("{what}: {state} of {}", tensors[t]),
                                    );
                                }
                                mixed_at += n;
                            }
                            at += n;
                        }
                        assert_eq!(mixed_at, mixed_all.len(), "{what}: {state} length");
                    }
                }
                // Every state a group keeps, for that group's tensors and no others.
                for state in mixed.states().names() {
                    let kept = mixed.states().tensors(state).unwrap();
                    for (t, name) in tensors.iter().enumerate() {
                        let group_keeps = uniform_names[t % 3].contains(&state);
                        assert_eq!(
                            kept.contains(name),
                            group_keeps,
                            "{what}: {state} of {name}"
                        );
                    }
                }
                // The mixed optimizer holds less than the largest uniform one and more
                // than the smallest.
                let bytes = mixed.states().bytes();
                let (lo, hi) = (
                    *uniform_bytes.iter().min().unwrap(),
                    *uniform_bytes.iter().max().unwrap(),
                );
                assert!(lo < bytes && bytes < hi, "{what}: {lo} < {bytes} < {hi}");
            }
        }

        fn adam(g: usize) -> AdamConfig {
            AdamConfig {
                lr: [1e-2, 5e-2, 2e-3][g],
                weight_decay: [0.0, 0.1, 0.01][g],
                amsgrad: g == 1,
                ..Default::default()
            }
        }

        #[test]
        fn adam_with_amsgrad_in_one_group() {
            check_against_uniform("Adam, amsgrad in group 1", &adam, &|set, groups| {
                Box::new(Adam::with_groups(set, groups).unwrap())
            });
        }

        #[test]
        fn adamw_with_amsgrad_in_two_groups_and_bf16_states() {
            let config = |g: usize| AdamWConfig {
                lr: [1e-2, 5e-2, 2e-3][g],
                amsgrad: g != 1,
                ..Default::default()
            };
            check_against_uniform(
                "AdamW bf16 states, amsgrad in 0 and 2",
                &config,
                &|set, groups| Box::new(AdamW::with_state_dtype(set, groups, Dtype::Bf16).unwrap()),
            );
        }

        #[test]
        fn sgd_with_momentum_in_some_groups() {
            let config = |g: usize| SgdConfig {
                lr: [1e-2, 5e-2, 2e-3][g],
                momentum: [0.0, 0.9, 0.5][g],
                nesterov: g == 2,
                ..Default::default()
            };
            check_against_uniform("SGD, momentum in 1 and 2", &config, &|set, groups| {
                Box::new(Sgd::with_groups(set, groups).unwrap())
            });
        }

        #[test]
        fn rmsprop_centered_and_momentum_in_different_groups() {
            // Two sparse slots at once: grad_avg (groups 1, 2), momentum_buffer (group 2).
            let config = |g: usize| RmsPropConfig {
                lr: [1e-2, 5e-3, 2e-3][g],
                centered: g >= 1,
                momentum: if g == 2 { 0.9 } else { 0.0 },
                ..Default::default()
            };
            check_against_uniform(
                "RMSprop, centered 1-2, momentum 2",
                &config,
                &|set, groups| Box::new(RmsProp::with_groups(set, groups).unwrap()),
            );
        }

        /// A pooled tensor (in the caller's buffers) keeps a sparse state like a tensor of
        /// clipstep's own: amsgrad in the pool's group, then in the other, bit for bit
        /// against a set of its own.
        #[test]
        fn pooled_tensors_keep_their_groups_states() {
            let ctx = ctx();
            for pooled_amsgrad in [true, false] {
                let buffer = user_storage(&ctx, 4096);
                let external = set_with_external(&ctx, 100, (&buffer, 0), (&buffer, 1024));
                let (own, _) = set_with_grads(&ctx, &[100, 100], None, 1);
                let mut results = Vec::new();
                for mut set in [external, own] {
                    set.upload_params(&data(200, 2, 1.0)).unwrap();
                    let names: Vec<String> = set.tensors().iter().map(|t| t.name.clone()).collect();
                    let config = |amsgrad| AdamConfig {
                        amsgrad,
                        ..Default::default()
                    };
                    let groups = vec![
                        ParamGroup::new([names[0].clone()], config(!pooled_amsgrad)),
                        ParamGroup::new([names[1].clone()], config(pooled_amsgrad)),
                    ];
                    let mut opt = Adam::with_groups(&set, groups).unwrap();
                    for step in 0..3 {
                        set.upload_grads(&data(200, 10 + step, 1.0)).unwrap();
                        opt.step(&mut set, &clipped()).unwrap();
                    }
                    let kept = opt.states().tensors("max_exp_avg_sq").unwrap();
                    assert_eq!(kept, [names[usize::from(pooled_amsgrad)].clone()]);
                    let vmax = opt.states().get("max_exp_avg_sq").unwrap();
                    assert_eq!(vmax.len(), 100);
                    results.push((set.download_params().unwrap(), vmax));
                }
                let what = format!("amsgrad in the pool's group: {pooled_amsgrad}");
                assert_bits_eq(&results[0].0, &results[1].0, &what);
                assert_bits_eq(&results[0].1, &results[1].1, &what);
            }
        }

        /// A checkpoint holds `<tensor>.max_exp_avg_sq` for the amsgrad group's tensors only
        /// (PyTorch's state dict), loads into an optimizer with the same groups bit-exactly,
        /// and is refused, changing nothing, by one whose groups keep other states.
        #[test]
        fn checkpoints_hold_each_tensors_own_states() {
            for ctx in [ctx(), Context::cpu()] {
                let build = |set: &ParamSet, groups| -> Box<dyn Optimizer> {
                    Box::new(Adam::with_groups(set, groups).unwrap())
                };
                let (set, opt) = run(&ctx, &adam, &build);
                let bytes = opt.states().save().unwrap();
                let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
                let tensors: Vec<String> = set.tensors().iter().map(|t| t.name.clone()).collect();
                for (t, name) in tensors.iter().enumerate() {
                    for state in ["exp_avg", "exp_avg_sq", "step"] {
                        assert!(
                            file.tensor(&format!("{name}.{state}")).is_ok(),
                            "{name}.{state}"
                        );
                    }
                    let has = file.tensor(&format!("{name}.max_exp_avg_sq")).is_ok();
                    assert_eq!(has, t % 3 == 1, "{name}.max_exp_avg_sq");
                }
                let summary = CheckpointSummary::read(&bytes).unwrap();
                assert_eq!(summary.states, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);

                let mut fresh = Adam::with_groups(&set, three_groups(&set, adam)).unwrap();
                fresh.checkpoint().load(&bytes).unwrap();
                assert_eq!(
                    fresh.states().save().unwrap(),
                    bytes,
                    "a bit-exact round trip"
                );

                // Groups keeping other states: amsgrad everywhere, or nowhere.
                for amsgrad in [true, false] {
                    let config = |g| AdamConfig { amsgrad, ..adam(g) };
                    let mut other = Adam::with_groups(&set, three_groups(&set, config)).unwrap();
                    let before = other.states().save().unwrap();
                    let err = other.checkpoint().load(&bytes).unwrap_err();
                    assert!(
                        matches!(err, Error::Checkpoint(ref m) if m.contains("states differ")),
                        "{err}"
                    );
                    assert_eq!(other.states().save().unwrap(), before, "unchanged");
                }
            }
        }
    }

    #[test]
    fn bad_groups_are_typed_errors() {
        let (set, _) = set_with_grads(&ctx(), &[3, 4, 5], None, 6);
        let adam = AdamConfig::default;
        let cases: Vec<(&str, Vec<ParamGroup<AdamConfig>>, &str)> = vec![
            ("no group", vec![], "at least one group"),
            (
                "a tensor in none",
                vec![ParamGroup::new(["t0", "t1"], adam())],
                "\"t2\" is in no group",
            ),
            (
                "a tensor in two",
                vec![
                    ParamGroup::new(["t0", "t1"], adam()),
                    ParamGroup::new(["t1", "t2"], adam()),
                ],
                "in group 0 and group 1",
            ),
            (
                "an unknown name",
                vec![ParamGroup::new(["t0", "t1", "t2", "nope"], adam())],
                "\"nope\"",
            ),
        ];
        for (what, groups, expect) in cases {
            let err = Adam::with_groups(&set, groups).err().unwrap();
            assert!(
                matches!(err, Error::InvalidGroups(ref m) if m.contains(expect)),
                "{what}: {err}"
            );
        }
        let err = Adam::with_groups(
            &set,
            vec![ParamGroup::new(
                ["t0", "t1", "t2"],
                AdamConfig { lr: -1.0, ..adam() },
            )],
        )
        .err()
        .unwrap();
        assert!(
            matches!(err, Error::InvalidHyperparameter { name: "lr", .. }),
            "{err}"
        );
    }
}

/// 8-bit AdamW keeps its moments in 2 bytes per parameter and 8 per 256-element block (f32
/// AdamW: 8 per parameter), and a tensor below `min_8bit_size` in f32; its update on a
/// 2D grid (a context of at most 7 workgroups per dimension) gives the bits of the 1D one.
#[test]
fn adamw8bit_keeps_a_quarter_of_adamws_state() {
    let sizes = [1 << 20, 100];
    let n: usize = sizes.iter().sum();
    let (set, _) = set_with_grads(&ctx(), &sizes, None, 1);
    let eight = AdamW8bitConfig::default().build(&set).unwrap();
    let f32_adamw = AdamWConfig::default().build(&set).unwrap();
    let per_param = |bytes: u64| bytes as f64 / n as f64;
    let q8 = per_param(eight.states().bytes());
    let full = per_param(f32_adamw.states().bytes());
    // Codes 2 B; absmax 2 × 4 B per 256 elements (0.031 B); the 100-element tensor's f32
    // moments (800 B) and the slab's padding.
    assert!(
        (2.03..2.04).contains(&q8),
        "{q8} bytes of 8-bit state per parameter"
    );
    assert!(
        (8.0..8.01).contains(&full),
        "{full} bytes of f32 state per parameter"
    );

    let run = |ctx: &Context| {
        let sizes = [300_000, 4097, 37];
        let n: usize = sizes.iter().sum();
        let (mut set, _) = set_with_grads(ctx, &sizes, None, 1);
        set.upload_params(&data(n, 2, 1.0)).unwrap();
        let mut opt = AdamW8bitConfig::default().build(&set).unwrap();
        for step in 0..3 {
            set.upload_grads(&data(n, 40 + step, 1.0)).unwrap();
            opt.step(&mut set, &StepOptions::default()).unwrap();
        }
        let states: Vec<Vec<f32>> = ["exp_avg", "exp_avg_sq"]
            .iter()
            .map(|s| opt.states().get(s).unwrap())
            .collect();
        (set.download_params().unwrap(), states)
    };
    let (p1, s1) = run(&ctx());
    let (p2, s2) = run(&ctx_small_grid());
    assert_bits_eq(&p1, &p2, "params, 1D vs 2D grid");
    for (a, b) in s1.iter().zip(&s2) {
        assert_bits_eq(a, b, "moments, 1D vs 2D grid");
    }
}
