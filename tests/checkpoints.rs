//! Optimizer checkpoints: exact round trips, and every bad checkpoint rejected unchanged.

mod common;

use clipstep::*;
use common::*;

use common::harness::Build;

fn trained<C: Build>(ctx: &Context, config: C, steps: u64) -> (ParamSet, C::Opt) {
    let (mut set, _) = set_with_grads(ctx, &[5000, 3, 257], Some(8192), 1);
    set.upload_params(&data(5260, 2, 1.0)).unwrap();
    let mut opt = config.make(&set).unwrap();
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
    opt.states()
        .names()
        .iter()
        .map(|n| opt.states().get(n).unwrap())
        .collect()
}

fn round_trip_is_exact<C: Build + PartialEq>(config: C, other: C, config_of: fn(&C::Opt) -> C) {
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, opt) = trained(&ctx, config.clone(), 3);
        let bytes = opt.states().save().unwrap();
        let mut fresh = other.make(&set).unwrap();
        fresh.checkpoint().load(&bytes).unwrap();
        assert_eq!(config_of(&fresh), config_of(&opt));
        assert_eq!(fresh.states().step_count().unwrap(), 3);
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
        assert_eq!(
            fresh.states().save().unwrap(),
            opt.states().save().unwrap(),
            "re-saved bytes"
        );
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
    round_trip_is_exact(
        AdagradConfig {
            lr_decay: 0.1,
            initial_accumulator_value: 0.5,
            ..Default::default()
        },
        AdagradConfig::default(),
        |o: &Adagrad| *o.config(),
    );
    round_trip_is_exact(
        LionConfig {
            weight_decay: 0.1,
            ..Default::default()
        },
        LionConfig::default(),
        |o: &Lion| *o.config(),
    );
    round_trip_is_exact(
        LarsConfig {
            nesterov: true,
            ..Default::default()
        },
        LarsConfig::default(),
        |o: &Lars| *o.config(),
    );
    round_trip_is_exact(
        LambConfig {
            weight_decay: 0.1,
            ..Default::default()
        },
        LambConfig::default(),
        |o: &Lamb| *o.config(),
    );
    round_trip_is_exact(
        AdamaxConfig::default(),
        AdamaxConfig {
            lr: 0.5,
            ..Default::default()
        },
        |o: &Adamax| *o.config(),
    );
    round_trip_is_exact(
        AdadeltaConfig::default(),
        AdadeltaConfig {
            rho: 0.5,
            ..Default::default()
        },
        |o: &Adadelta| *o.config(),
    );
    // Loaded betas differ from those the optimizer was built with: its bias corrections
    // (the finalize's group schedule) follow the loaded config.
    round_trip_is_exact(
        RAdamConfig {
            betas: (0.8, 0.9),
            ..Default::default()
        },
        RAdamConfig::default(),
        |o: &RAdam| *o.config(),
    );
    round_trip_is_exact(
        NAdamConfig {
            betas: (0.8, 0.99),
            momentum_decay: 0.1,
            ..Default::default()
        },
        NAdamConfig::default(),
        |o: &NAdam| *o.config(),
    );
    // ASGD's averaged parameters (t0 = 1: averaging from step 3) and Rprop's step sizes
    // (which start at lr, not 0) are states like any other.
    round_trip_is_exact(
        AsgdConfig {
            t0: 1.0,
            ..Default::default()
        },
        AsgdConfig::default(),
        |o: &Asgd| *o.config(),
    );
    round_trip_is_exact(
        RpropConfig {
            lr: 0.1,
            ..Default::default()
        },
        RpropConfig::default(),
        |o: &Rprop| *o.config(),
    );
    // 8-bit moments (the 5000-element tensor; the others keep f32): saved dequantized, and
    // requantized on load to the same codes and absmax-equivalent scale, so the step after
    // the load is the same to the bit.
    round_trip_is_exact(
        AdamW8bitConfig {
            betas: (0.8, 0.95),
            ..Default::default()
        },
        AdamW8bitConfig::default(),
        |o: &AdamW8bit| *o.config(),
    );
}

/// An 8-bit optimizer refuses a checkpoint whose min_8bit_size keeps other tensors 8-bit,
/// and is left as it was.
#[test]
fn an_8bit_checkpoint_keeps_its_8bit_tensors() {
    let ctx = ctx();
    let (set, opt) = trained(&ctx, AdamW8bitConfig::default(), 2);
    let bytes = opt.states().save().unwrap();
    let other = AdamW8bitConfig {
        min_8bit_size: 100,
        ..Default::default()
    };
    let mut fresh = other.make(&set).unwrap();
    let before = snapshot(&fresh);
    let err = fresh.checkpoint().load(&bytes).unwrap_err();
    assert!(err.to_string().contains("min_8bit_size"), "{err}");
    assert_eq!(snapshot(&fresh), before);
    assert_eq!(fresh.states().step_count().unwrap(), 0);
}

#[test]
fn files_round_trip_and_missing_files_are_io_errors() {
    let (set, opt) = trained(&ctx(), AdamWConfig::default(), 2);
    let path = std::env::temp_dir().join(format!("clipstep-ckpt-{}.bin", std::process::id()));
    opt.states().save_to(&path).unwrap();
    let mut fresh = AdamW::new(&set, AdamWConfig::default()).unwrap();
    fresh.checkpoint().load_from(&path).unwrap();
    assert_eq!(fresh.states().step_count().unwrap(), 2);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        fresh.checkpoint().load_from(&path),
        Err(Error::Io(_))
    ));
}

/// `bytes` with the first `from` replaced by `to` (same length).
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn bad_checkpoints_are_rejected_and_change_nothing() {
    let ctx = ctx();
    let (set, opt) = trained(&ctx, AdamConfig::default(), 2);
    let good = opt.states().save().unwrap();
    // The config is stored as the optimizer's own JSON, not as a shader uniform.
    assert!(String::from_utf8_lossy(&good).contains(r#"\"betas\":[0.9,0.999]"#));
    let (_, mut target) = trained(&ctx, AdamConfig::default(), 1);
    let before = snapshot(&target);

    let mut corrupted = good.clone();
    corrupted[good.len() / 2] ^= 0x40;
    let wrong_version = replace(&good, b"\"version\":\"4\"", b"\"version\":\"5\"");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("corrupted", corrupted, "checksum"),
        ("wrong version", wrong_version, "this build reads version"),
        ("truncated", good[..good.len() - 100].to_vec(), "truncated"),
        (
            "not a checkpoint",
            b"hello world, not a checkpoint".to_vec(),
            "not a readable clipstep checkpoint",
        ),
        ("empty", Vec::new(), "not a readable clipstep checkpoint"),
    ];
    for (what, bytes, expect) in cases {
        let err = target.checkpoint().load(&bytes).unwrap_err();
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
    let err = target
        .checkpoint()
        .load(&sgd.states().save().unwrap())
        .unwrap_err();
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
    let err = target
        .checkpoint()
        .load(&ams.states().save().unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("states differ"), "{err}");
    // Another layout.
    let (other_set, _) = set_with_grads(&ctx, &[5000, 3, 258], None, 1);
    let other = Adam::new(&other_set, AdamConfig::default()).unwrap();
    let err = target
        .checkpoint()
        .load(&other.states().save().unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("saved with shape [258]"), "{err}");

    assert_eq!(target.states().step_count().unwrap(), 1);
    for (x, y) in before.iter().zip(&snapshot(&target)) {
        assert_bits_eq(x, y, "state after rejected loads");
    }
    assert_eq!(target.config(), &AdamConfig::default());
}

/// An AdamW of two parameter groups (lr 1e-3 and 0.1) and a loss scaler, three steps
/// trained on `ctx`: a checkpoint whose header holds every kind of field.
fn grouped_adamw(ctx: &Context) -> (ParamSet, AdamW) {
    let (mut set, _) = set_with_grads(ctx, &[61, 3, 17], None, 1);
    set.upload_params(&data(81, 2, 1.0)).unwrap();
    let config = |lr| AdamWConfig {
        lr,
        ..Default::default()
    };
    let groups = vec![
        ParamGroup::new(["t0", "t2"], config(1e-3)),
        ParamGroup::new(["t1"], config(0.1)),
    ];
    let mut opt = AdamW::with_groups(&set, groups).unwrap();
    opt.loss_scaling()
        .set_scaler(Some(LossScaler::default()))
        .unwrap();
    for s in 0..3 {
        set.upload_grads(&data(81, 10 + s, 65536.0)).unwrap();
        opt.step(&mut set, &StepOptions::default()).unwrap();
    }
    (set, opt)
}

/// Issue 31's finding, tested the way it was found: every single-bit flip of the length
/// prefix and the JSON header, and 3000 random single-bit flips of the data, of a saved
/// AdamW checkpoint (two groups, a scaler) is [`Error::Checkpoint`], and the optimizer it
/// was loaded into is bit-identical afterwards (its whole saved file unchanged).
#[test]
fn every_single_bit_flip_is_rejected_and_changes_nothing() {
    let cpu = Context::cpu();
    let (_, opt) = grouped_adamw(&cpu);
    let good = opt.states().save().unwrap();
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let (_, mut target) = grouped_adamw(&cpu);
    target.checkpoint().load(&good).unwrap();
    let before = target.states().save().unwrap();
    let mut bits: Vec<usize> = (0..header_end * 8).collect();
    let data_bits = (good.len() - header_end) * 8;
    assert!(
        data_bits > 3000 && header_end > 1000,
        "{header_end} {data_bits}"
    );
    // A fixed pseudo-random choice (splitmix64) of 3000 data bits.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bits.push(header_end * 8 + (z ^ (z >> 31)) as usize % data_bits);
    }
    for &bit in &bits {
        let mut flipped = good.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        match target.checkpoint().load(&flipped) {
            Err(Error::Checkpoint(_)) => {}
            other => panic!("bit {bit} (byte {}): {other:?}", bit / 8),
        }
        // Nothing of the file is believed before the checksum: a summary fails the same way.
        assert!(CheckpointSummary::read(&flipped).is_err(), "bit {bit}");
    }
    assert_eq!(
        target.states().save().unwrap(),
        before,
        "after {} flips",
        bits.len()
    );
}

/// The redundant fields must agree: a `config` other than the first group's, or a
/// `<tensor>.step` other than the metadata's `step`, is rejected even with a valid
/// checksum (a file written by another tool, or edited by hand and re-summed).
#[test]
fn fields_that_disagree_are_rejected() {
    let cpu = Context::cpu();
    let (_, opt) = grouped_adamw(&cpu);
    let good = opt.states().save().unwrap();
    let (_, mut target) = grouped_adamw(&cpu);
    let before = target.states().save().unwrap();
    let lr = br#"{\"lr\":0.001,"#;
    // config's lr (the first group's is 1e-3; the groups keep theirs), and the `t1.step`
    // entry's value made 4 (the metadata says 3).
    let mut step_edited = good.clone();
    let at = entry_offset(&good, "t1.step");
    assert_eq!(good[at..at + 4], 3f32.to_le_bytes());
    step_edited[at..at + 4].copy_from_slice(&4f32.to_le_bytes());
    let edits = [
        (
            replace(&good, lr, br#"{\"lr\":0.002,"#),
            "differs from the first group",
        ),
        (step_edited, "holds step 4"),
    ];
    for (edited, expect) in edits {
        let edited = resummed(&edited);
        let err = target.checkpoint().load(&edited).unwrap_err();
        assert!(
            matches!(err, Error::Checkpoint(_)) && err.to_string().contains(expect),
            "{err}"
        );
        assert_eq!(target.states().save().unwrap(), before);
    }
    // The same edit re-summed without disagreeing (both lrs changed) loads: the check is
    // of agreement, not of the values.
    let both = replace(&good, lr, br#"{\"lr\":0.002,"#);
    let both = resummed(&replace(
        &both,
        br#"\"config\":{\"lr\":0.001,"#,
        br#"\"config\":{\"lr\":0.002,"#,
    ));
    target.checkpoint().load(&both).unwrap();
    assert_eq!(target.param_groups()[0].config.lr, 0.002);
}

/// Where entry `name`'s data starts in a safetensors `file` (its header's `data_offsets`
/// are relative to the end of the header).
fn entry_offset(file: &[u8], name: &str) -> usize {
    let header_end = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&file[8..header_end]).unwrap();
    let entry = &header[header.find(&format!("\"{name}\":")).unwrap()..];
    let offsets = &entry[entry.find("\"data_offsets\":[").unwrap() + 16..];
    let start: usize = offsets[..offsets.find(',').unwrap()].parse().unwrap();
    header_end + start
}

/// `file` with its version-4 `crc32` recomputed: the CRC-32 of the whole file with the
/// field's digits read as `00000000` (as `src/checkpoint/tensors.rs` and
/// `scripts/checkpoint_torch.py` write it).
fn resummed(file: &[u8]) -> Vec<u8> {
    let key = br#""crc32":""#;
    let at = file.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let mut out = file.to_vec();
    out[at..at + 8].copy_from_slice(b"00000000");
    let crc = format!("{:08x}", crc32fast::hash(&out));
    out[at..at + 8].copy_from_slice(crc.as_bytes());
    out
}

/// An Adam over `tensors` (name, length) on `ctx`, trained `steps` steps from data that
/// depends only on each tensor's name, so sets in any order see the same values.
fn named_adam(ctx: &Context, tensors: &[(&str, usize)], steps: u64) -> (ParamSet, Adam) {
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|&(n, len)| TensorSpec::new(n, [len]))
        .collect();
    let mut set = ctx.param_set(&specs).unwrap();
    let seed = |name: &str| name.bytes().map(u64::from).sum::<u64>();
    for &(n, len) in tensors {
        set.upload_param(n, &data(len, seed(n), 1.0)).unwrap();
    }
    let mut opt = Adam::new(&set, AdamConfig::default()).unwrap();
    for s in 0..steps {
        for &(n, len) in tensors {
            set.upload_grad(n, &data(len, seed(n) * 31 + s, 1.0))
                .unwrap();
        }
        opt.step(&mut set, &StepOptions::default()).unwrap();
    }
    (set, opt)
}

/// One tensor's slice of a concatenated state.
fn slice_of<'a>(set: &ParamSet, all: &'a [f32], name: &str) -> &'a [f32] {
    let mut at = 0usize;
    for t in set.tensors() {
        let n = t.numel as usize;
        if t.name == name {
            return &all[at..at + n];
        }
        at += n;
    }
    panic!("no tensor {name}")
}

#[test]
fn checkpoints_load_by_name_into_reordered_grown_and_shrunk_sets() {
    let ctx = ctx();
    let (saved_set, saved) = named_adam(&ctx, &[("w", 300), ("b", 7), ("emb", 1000)], 2);
    let bytes = saved.states().save().unwrap();
    let moments = saved.states().get("exp_avg").unwrap();

    // Reordered: loads by name.
    let (set, mut reordered) = named_adam(&ctx, &[("emb", 1000), ("w", 300), ("b", 7)], 0);
    reordered.checkpoint().load(&bytes).unwrap();
    assert_eq!(reordered.states().step_count().unwrap(), 2);
    let got = reordered.states().get("exp_avg").unwrap();
    for name in ["w", "b", "emb"] {
        assert_bits_eq(
            slice_of(&set, &got, name),
            slice_of(&saved_set, &moments, name),
            name,
        );
    }

    // Grown by a layer: an error by default, fresh state on request.
    let (set, mut grown) = named_adam(&ctx, &[("w", 300), ("new", 50), ("b", 7), ("emb", 1000)], 0);
    let err = grown.checkpoint().load(&bytes).unwrap_err();
    assert!(
        matches!(err, Error::Checkpoint(ref m) if m.contains("[\"new\"]") && m.contains("FreshState")),
        "{err}"
    );
    assert_eq!(
        grown.states().step_count().unwrap(),
        0,
        "a rejected load changed the step"
    );
    let fresh = LoadOptions {
        missing: MissingTensors::FreshState,
        ..Default::default()
    };
    grown.checkpoint().load_with(&bytes, &fresh).unwrap();
    let got = grown.states().get("exp_avg").unwrap();
    assert!(slice_of(&set, &got, "new").iter().all(|&x| x == 0.0));
    assert_bits_eq(
        slice_of(&set, &got, "emb"),
        slice_of(&saved_set, &moments, "emb"),
        "emb",
    );

    // Shrunk by a layer: an error by default, ignored on request.
    let (set, mut shrunk) = named_adam(&ctx, &[("emb", 1000), ("w", 300)], 0);
    let err = shrunk.checkpoint().load(&bytes).unwrap_err();
    assert!(err.to_string().contains("[\"b\"]"), "{err}");
    let ignore = LoadOptions {
        unexpected: UnexpectedTensors::Ignore,
        ..Default::default()
    };
    shrunk.checkpoint().load_with(&bytes, &ignore).unwrap();
    let got = shrunk.states().get("exp_avg").unwrap();
    assert_bits_eq(
        slice_of(&set, &got, "w"),
        slice_of(&saved_set, &moments, "w"),
        "w",
    );
}

/// The binary checkpoints of the build before safetensors (format version 2) still load:
/// the committed file holds Adam (amsgrad, weight decay 0.01) after two CPU steps, and a
/// fresh CPU run of the same two steps gives the same bits.
#[test]
fn version_2_files_still_load() {
    let cpu = Context::cpu();
    let specs = [
        TensorSpec::new("w", [3, 5]),
        TensorSpec::new("b", [5]),
        TensorSpec::new("scalar", Vec::<usize>::new()),
    ];
    let config = AdamConfig {
        amsgrad: true,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut set = cpu.param_set(&specs).unwrap();
    let n = set.numel() as usize;
    let params: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    set.upload_params(&params).unwrap();
    let mut again = Adam::new(&set, config).unwrap();
    for s in 0..2 {
        let grads: Vec<f32> = (0..n).map(|i| ((i + s * 7) as f32 * 0.71).cos()).collect();
        set.upload_grads(&grads).unwrap();
        again.step(&mut set, &StepOptions::default()).unwrap();
    }
    let mut loaded = Adam::new(&set, config).unwrap();
    loaded
        .checkpoint()
        .load(include_bytes!("../fixtures/checkpoint_v2_adam.bin"))
        .unwrap();
    assert_eq!(loaded.states().step_count().unwrap(), 2);
    for name in again.states().names() {
        assert_bits_eq(
            &loaded.states().get(name).unwrap(),
            &again.states().get(name).unwrap(),
            name,
        );
    }
}

/// A run saved by one process and resumed by another continues bit-identically to a run
/// that never stopped.
#[test]
fn resume_in_another_process_is_bit_identical() {
    let path = std::env::temp_dir().join(format!(
        "clipstep-resume-{}.safetensors",
        std::process::id()
    ));
    let tensors = [("w", 4000), ("b", 33)];
    if let Some(out) = std::env::var_os("CLIPSTEP_RESUME_CHILD") {
        // The child: three steps, then save with the parameters beside the checkpoint.
        let (set, opt) = named_adam(&ctx(), &tensors, 3);
        opt.states().save_to(&out).unwrap();
        let params: Vec<u8> = set
            .download_params()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(format!("{}.params", out.to_string_lossy()), params).unwrap();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "resume_in_another_process_is_bit_identical",
            "--nocapture",
        ])
        .env("CLIPSTEP_RESUME_CHILD", &path)
        .status()
        .unwrap();
    assert!(status.success());
    // Uninterrupted: five steps here.
    let (mut set, mut opt) = named_adam(&ctx(), &tensors, 3);
    let more = |set: &mut ParamSet, opt: &mut Adam| {
        for s in 3..5u64 {
            for (n, len) in tensors {
                let seed = n.bytes().map(u64::from).sum::<u64>();
                set.upload_grad(n, &data(len, seed * 31 + s, 1.0)).unwrap();
            }
            opt.step(set, &StepOptions::default()).unwrap();
        }
    };
    more(&mut set, &mut opt);
    let want = set.download_params().unwrap();
    // Resumed: the child's parameters and checkpoint, two more steps.
    let (mut resumed_set, mut resumed) = named_adam(&ctx(), &tensors, 0);
    let params = std::fs::read(format!("{}.params", path.to_string_lossy())).unwrap();
    let params: Vec<f32> = params
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    resumed_set.upload_params(&params).unwrap();
    resumed.checkpoint().load_from(&path).unwrap();
    more(&mut resumed_set, &mut resumed);
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(format!("{}.params", path.to_string_lossy())).unwrap();
    assert_bits_eq(
        &resumed_set.download_params().unwrap(),
        &want,
        "resumed params",
    );
    assert_eq!(resumed.states().step_count().unwrap(), 5);
}
