//! Optimizer checkpoints: exact round trips, and every bad checkpoint rejected unchanged.

mod common;

use clipstep::*;
use common::*;

use common::harness::Build;

fn trained<C: Build>(ctx: &Context, config: C, steps: u64) -> (ParamSet, C::Opt) {
    let (mut set, _) = set_with_grads(ctx, &[5000, 3, 257], Some(8192), 1);
    set.upload_params(&data(5260, 2, 1.0)).unwrap();
    let mut opt = config.build(&set).unwrap();
    for s in 0..steps {
        set.upload_grads(&data(5260, 10 + s, 1.0)).unwrap();
        let options = StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: 1.0,
                norm: Norm::L2,
            },
            ..Default::default()
        };
        opt.step(&mut set, &options).unwrap();
    }
    (set, opt)
}

fn snapshot<O: Optimizer>(opt: &O) -> Vec<Vec<f32>> {
    opt.state_names()
        .iter()
        .map(|n| opt.state(n).unwrap())
        .collect()
}

fn round_trip_is_exact<C: Build + PartialEq>(config: C, other: C, config_of: fn(&C::Opt) -> C) {
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, opt) = trained(&ctx, config.clone(), 3);
        let bytes = opt.save().unwrap();
        let mut fresh = other.build(&set).unwrap();
        fresh.load(&bytes).unwrap();
        assert_eq!(config_of(&fresh), config_of(&opt));
        assert_eq!(fresh.step_count().unwrap(), 3);
        let (a, b) = (snapshot(&opt), snapshot(&fresh));
        for (x, y) in a.iter().zip(&b) {
            assert_bits_eq(x, y, "state after load");
        }
        // Both continue identically.
        let mut opt = opt;
        let params = set.download_params().unwrap();
        set.upload_grads(&data(5260, 99, 1.0)).unwrap();
        opt.step(&mut set, &StepOptions::default()).unwrap();
        let after_original = set.download_params().unwrap();
        set.upload_params(&params).unwrap();
        fresh.step(&mut set, &StepOptions::default()).unwrap();
        assert_bits_eq(
            &set.download_params().unwrap(),
            &after_original,
            "a step after load",
        );
        assert_eq!(fresh.save().unwrap(), opt.save().unwrap(), "re-saved bytes");
    }
}

#[test]
fn round_trips_are_bit_exact_for_every_optimizer() {
    round_trip_is_exact(
        AdamConfig {
            amsgrad: true,
            ..Default::default()
        },
        AdamConfig {
            amsgrad: true,
            lr: 0.5,
            ..Default::default()
        },
        |o: &Adam| *o.config(),
    );
    round_trip_is_exact(
        AdamWConfig::default(),
        AdamWConfig {
            weight_decay: 0.3,
            ..Default::default()
        },
        |o: &AdamW| *o.config(),
    );
    round_trip_is_exact(
        SgdConfig {
            momentum: 0.9,
            lr: 0.1,
            ..Default::default()
        },
        SgdConfig {
            momentum: 0.5,
            ..Default::default()
        },
        |o: &Sgd| *o.config(),
    );
    round_trip_is_exact(
        RmsPropConfig {
            centered: true,
            momentum: 0.9,
            ..Default::default()
        },
        RmsPropConfig {
            centered: true,
            momentum: 0.1,
            ..Default::default()
        },
        |o: &RmsProp| *o.config(),
    );
}

#[test]
fn files_round_trip_and_missing_files_are_io_errors() {
    let (set, opt) = trained(&ctx(), AdamWConfig::default(), 2);
    let path = std::env::temp_dir().join(format!("clipstep-ckpt-{}.bin", std::process::id()));
    opt.save_to(&path).unwrap();
    let mut fresh = AdamW::new(&set, AdamWConfig::default()).unwrap();
    fresh.load_from(&path).unwrap();
    assert_eq!(fresh.step_count().unwrap(), 2);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(fresh.load_from(&path), Err(Error::Io(_))));
}

#[test]
fn bad_checkpoints_are_rejected_and_change_nothing() {
    let ctx = ctx();
    let (set, opt) = trained(&ctx, AdamConfig::default(), 2);
    let good = opt.save().unwrap();
    // The config is stored as the optimizer's own JSON, not as a shader uniform.
    assert!(String::from_utf8_lossy(&good).contains("\"betas\":[0.9,0.999]"));
    let (_, mut target) = trained(&ctx, AdamConfig::default(), 1);
    let before = snapshot(&target);

    let mut corrupted = good.clone();
    corrupted[good.len() / 2] ^= 0x40;
    let mut wrong_version = good.clone();
    wrong_version[8] = CHECKPOINT_VERSION as u8 + 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("corrupted", corrupted, "checksum"),
        ("wrong version", wrong_version, "this build reads version"),
        ("truncated", good[..good.len() - 100].to_vec(), "checksum"),
        (
            "not a checkpoint",
            b"hello world, not a checkpoint".to_vec(),
            "not a clipstep checkpoint",
        ),
        ("empty", Vec::new(), "not a clipstep checkpoint"),
    ];
    for (what, bytes, expect) in cases {
        let err = target.load(&bytes).unwrap_err();
        assert!(
            matches!(err, Error::Checkpoint(_)) && err.to_string().contains(expect),
            "{what}: {err}"
        );
    }

    // Another optimizer.
    let sgd = Sgd::new(
        &set,
        SgdConfig {
            momentum: 0.9,
            ..Default::default()
        },
    )
    .unwrap();
    let err = target.load(&sgd.save().unwrap()).unwrap_err();
    assert!(err.to_string().contains("saved by SGD"), "{err}");
    // Same optimizer, other states (amsgrad).
    let ams = Adam::new(
        &set,
        AdamConfig {
            amsgrad: true,
            ..Default::default()
        },
    )
    .unwrap();
    let err = target.load(&ams.save().unwrap()).unwrap_err();
    assert!(err.to_string().contains("states differ"), "{err}");
    // Another layout.
    let (other_set, _) = set_with_grads(&ctx, &[5000, 3, 258], None, 1);
    let other = Adam::new(&other_set, AdamConfig::default()).unwrap();
    let err = target.load(&other.save().unwrap()).unwrap_err();
    assert!(err.to_string().contains("layout differs"), "{err}");

    assert_eq!(target.step_count().unwrap(), 1);
    for (x, y) in before.iter().zip(&snapshot(&target)) {
        assert_bits_eq(x, y, "state after rejected loads");
    }
    assert_eq!(target.config(), &AdamConfig::default());
}
