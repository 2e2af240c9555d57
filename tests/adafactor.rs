//! Adafactor on the device against its CPU reference on tensors of every kind it treats
//! apart: matrices of awkward shapes (one row, one column, several tiles with partial
//! ones, batches of matrices), vectors and scalars, matrices spanning two slabs, grids past
//! the dimension limit; determinism, state memory, checkpoints, skipped steps and
//! hyperparameter checks.

mod common;

use clipstep::consts::tolerance::{UPDATE_ABS, UPDATE_ULPS};
use clipstep::reference::{adafactor_broadcast, clip_coef, effective_grad, global_norm};
use clipstep::*;
use common::steps::clipped_and_scaled;
use common::*;

/// Shapes of every kind, several tiles (128 rows × 64 columns) and partial ones among them.
const SHAPES: &[&[usize]] = &[
    &[5, 7],
    &[1, 300],
    &[300, 1],
    &[130, 70],
    &[2, 3, 131, 67],
    &[0, 4],
    &[7919],
    &[1],
    &[],
    &[64, 64],
];

/// Held by every test here: one at a time. On the GL backend every call holds the one GL
/// context for its duration, and wgpu gives up on a lock after 6 s; a first step compiles
/// this rule's kernels for its set's shape, which once took llvmpipe's GL seconds each
/// (before pipelines skipped the zero-initialization of workgroup memory), and two tests
/// at once made another test's call wait past that (a panic in wgpu-hal, not a result).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn set_of(ctx: &Context, shapes: &[&[usize]], slab_bytes: Option<u64>) -> ParamSet {
    let specs: Vec<TensorSpec> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| TensorSpec::new(format!("t{i}"), s.to_vec()))
        .collect();
    let options = ArenaOptions {
        max_slab_bytes: slab_bytes,
        ..Default::default()
    };
    ParamSet::new(ctx, &specs, options).expect("param set")
}

fn numels(shapes: &[&[usize]]) -> Vec<usize> {
    shapes.iter().map(|s| s.iter().product()).collect()
}

/// The optimizer's three states, one value per element.
fn states(opt: &Adafactor) -> [Vec<f32>; 3] {
    ["row_var", "col_var", "variance"].map(|n| opt.states().get(n).unwrap())
}

/// Three steps of `config` with `options` on `ctx`: before each, the reference takes the
/// device's parameters and states; after it, the parameters within the update tolerance
/// and the states within 2e-6 relative (their f32 sums run in tile order, the
/// reference's in f64).
fn steps_match(
    ctx: &Context, config: AdafactorConfig, options: StepOptions, shapes: &[&[usize]],
    slab_bytes: Option<u64>,
) {
    let mut set = set_of(ctx, shapes, slab_bytes);
    let sizes = numels(shapes);
    let n: usize = sizes.iter().sum();
    set.upload_params(&data(n, 2, 1.0)).unwrap();
    let mut opt = Adafactor::new(&set, config).unwrap();
    for step in 0..3u64 {
        // Rows and columns of different magnitudes.
        let grads: Vec<f32> = data(n, 10 + step, 1.0)
            .iter()
            .enumerate()
            .map(|(i, g)| g * (1.0 + (i % 13) as f32))
            .collect();
        set.upload_grads(&grads).unwrap();
        let mut p = set.download_params().unwrap();
        let mut s = states(&opt);
        let state = opt
            .step(&mut set, &options)
            .unwrap()
            .read_blocking()
            .unwrap();
        let what = format!("{config:?}, {options:?}, step {step}");
        assert_eq!(state.step, step as u32 + 1, "{what}");
        let total = global_norm(&split(&grads, &sizes), 2.0) / options.grad_scale;
        if let Some((max_norm, Norm::L2)) = options.clip.norm_clip() {
            let want = clip_coef(total, max_norm);
            assert_rel(state.clip_coef, want, 1e-5, &format!("{what}: clip"));
        }
        let inv = 1.0 / options.grad_scale;
        let value = options.clip.value_clip();
        let effective: Vec<f32> = grads
            .iter()
            .map(|&g| effective_grad(g, inv, state.clip_coef, value))
            .collect();
        let mut at = 0;
        for (shape, &len) in shapes.iter().zip(&sizes) {
            let r = at..at + len;
            let [a, b, c] = &mut s;
            let t = TensorStep {
                params: &mut p[r.clone()],
                grads: &effective[r.clone()],
                shape,
                states: [
                    Some(&mut a[r.clone()]),
                    Some(&mut b[r.clone()]),
                    Some(&mut c[r]),
                ],
            };
            adafactor_broadcast(t, shape, state.step, &(&config).into());
            at += len;
        }
        let got = set.download_params().unwrap();
        assert_close_elementwise(
            &got,
            &p,
            UPDATE_ULPS,
            UPDATE_ABS,
            &format!("{what}: params"),
        );
        for (k, (got, want)) in states(&opt).iter().zip(&s).enumerate() {
            assert_close(got, want, 2e-6, 1e-30, &format!("{what}: state {k}"));
        }
    }
}

#[test]
fn matrices_vectors_and_scalars_match_the_reference() {
    let _serial = one_at_a_time();
    for config in AdafactorConfig::examples() {
        for options in clipped_and_scaled() {
            steps_match(&ctx(), config, options, SHAPES, None);
        }
    }
}

/// Sets of one kind of tensor each: their slabs' kernels leave the other kinds' paths out
/// (`SHAPE_FACTOR_*`).
#[test]
fn sets_of_one_kind_match_the_reference() {
    let _serial = one_at_a_time();
    let config = AdafactorConfig::examples().remove(0);
    let kinds: [&[&[usize]]; 3] = [
        &[&[64, 64], &[3, 8, 12], &[1, 4]],
        &[&[5, 7], &[130, 70], &[300, 1]],
        &[&[7919], &[1], &[]],
    ];
    for shapes in kinds {
        steps_match(&ctx(), config, clipped(), shapes, None);
    }
}

#[test]
fn matrices_spanning_slabs_and_2d_grids_match_the_reference() {
    let _serial = one_at_a_time();
    let shapes: &[&[usize]] = &[
        &[3, 5000],
        &[200, 150],
        &[17],
        &[2, 70, 90],
        &[20000],
        &[9000, 4],
    ];
    let config = AdafactorConfig::examples().remove(0);
    // 16K-element slabs: every matrix but the first crosses a boundary, and the vector.
    steps_match(&ctx(), config, clipped(), shapes, Some(64 * 1024));
    // Grids of more than 7 workgroups spill into y: pieces, lines and matrices alike.
    steps_match(
        &ctx_small_grid(),
        config,
        clipped(),
        shapes,
        Some(64 * 1024),
    );
}

#[test]
fn steps_are_bit_identical_across_runs() {
    let _serial = one_at_a_time();
    let run = || {
        let mut set = set_of(&ctx(), SHAPES, Some(64 * 1024));
        let n: usize = numels(SHAPES).iter().sum();
        set.upload_params(&data(n, 3, 1.0)).unwrap();
        let mut opt = Adafactor::new(&set, AdafactorConfig::default()).unwrap();
        for step in 0..3 {
            set.upload_grads(&data(n, 20 + step, 2.0)).unwrap();
            opt.step(&mut set, &clipped()).unwrap();
        }
        let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let s = states(&opt);
        (bits(set.download_params().unwrap()), s.map(bits))
    };
    assert!(run() == run(), "two runs differ");
}

/// A matrix keeps `R + C` floats, a vector one per element: a [1024, 512] weight and a
/// [512] bias keep (1024 + 512 + 512)·4 bytes, 0.016 bytes per parameter.
#[test]
fn a_matrix_keeps_its_rows_and_columns_only() {
    let _serial = one_at_a_time();
    let set = set_of(&ctx(), &[&[1024, 512], &[512]], None);
    let opt = Adafactor::new(&set, AdafactorConfig::default()).unwrap();
    assert_eq!(opt.states().bytes(), (1024 + 512 + 512) * 4);
    let params = (1024 * 512 + 512) as f64;
    assert!((opt.states().bytes() as f64) / params < 0.02);
}

#[test]
fn checkpoints_resume_bit_exactly() {
    let _serial = one_at_a_time();
    let n: usize = numels(SHAPES).iter().sum();
    let mut set = set_of(&ctx(), SHAPES, None);
    set.upload_params(&data(n, 4, 1.0)).unwrap();
    let config = AdafactorConfig::examples().remove(0);
    let mut opt = Adafactor::new(&set, config).unwrap();
    for step in 0..2 {
        set.upload_grads(&data(n, 30 + step, 1.0)).unwrap();
        opt.step(&mut set, &clipped()).unwrap();
    }
    let saved = opt.states().save().unwrap();
    let params = set.download_params().unwrap();
    let mut resumed = Adafactor::new(&set, config).unwrap();
    resumed.checkpoint().load(&saved).unwrap();
    assert_eq!(resumed.states().step_count().unwrap(), 2);
    assert!(states(&resumed) == states(&opt), "loaded states differ");
    set.upload_grads(&data(n, 40, 1.0)).unwrap();
    opt.step(&mut set, &clipped()).unwrap();
    let first = (set.download_params().unwrap(), states(&opt));
    set.upload_params(&params).unwrap();
    resumed.step(&mut set, &clipped()).unwrap();
    let second = (set.download_params().unwrap(), states(&resumed));
    assert_bits_eq(&first.0, &second.0, "params after the resumed step");
    for k in 0..3 {
        assert_bits_eq(&first.1[k], &second.1[k], "states after the resumed step");
    }
}

#[test]
fn a_skipped_step_changes_nothing() {
    let _serial = one_at_a_time();
    let n: usize = numels(SHAPES).iter().sum();
    let mut set = set_of(&ctx(), SHAPES, None);
    set.upload_params(&data(n, 5, 1.0)).unwrap();
    let mut opt = Adafactor::new(&set, AdafactorConfig::default()).unwrap();
    set.upload_grads(&data(n, 50, 1.0)).unwrap();
    opt.step(&mut set, &clipped()).unwrap();
    let before = (set.download_params().unwrap(), states(&opt));
    let mut poisoned = data(n, 51, 1.0);
    poisoned[40] = f32::NAN;
    set.upload_grads(&poisoned).unwrap();
    let options = StepOptions {
        nonfinite: Nonfinite::Skip,
        ..clipped()
    };
    let report = opt
        .step(&mut set, &options)
        .unwrap()
        .read_blocking()
        .unwrap();
    assert!(report.skipped);
    assert_bits_eq(&set.download_params().unwrap(), &before.0, "params");
    for (k, s) in states(&opt).iter().enumerate() {
        assert_bits_eq(s, &before.1[k], &format!("state {k}"));
    }
    assert_eq!(opt.states().step_count().unwrap(), 1);
}

#[test]
fn hyperparameters_are_checked_like_pytorch() {
    let _serial = one_at_a_time();
    let set = set_of(&ctx(), &[&[4, 4]], None);
    let bad = [
        AdafactorConfig {
            lr: -1.0,
            ..Default::default()
        },
        AdafactorConfig {
            beta2_decay: 0.1,
            ..Default::default()
        },
        AdafactorConfig {
            eps: (-1e-3, 1e-3),
            ..Default::default()
        },
        AdafactorConfig {
            eps: (1e-30, -1.0),
            ..Default::default()
        },
        AdafactorConfig {
            d: 0.5,
            ..Default::default()
        },
        AdafactorConfig {
            weight_decay: -0.1,
            ..Default::default()
        },
    ];
    for config in bad {
        let err = Adafactor::new(&set, config).err();
        assert!(
            matches!(err, Some(Error::InvalidHyperparameter { .. })),
            "{config:?}: {err:?}"
        );
    }
    let d = AdafactorConfig::default();
    assert_eq!(
        (d.lr, d.beta2_decay, d.d, d.weight_decay),
        (1e-2, -0.8, 1.0, 0.0)
    );
    assert_eq!(d.eps, (f64::from(f32::EPSILON), 1e-3));
}

/// The weights `[40, 70]`, `[3, 50]` and the bias `[70]`, as the caller's tensors (one
/// buffer for the params, one for the grads: a pool) and as clipstep's own: the same bits.
#[test]
fn pooled_matrices_step_like_own_slabs() {
    let _serial = one_at_a_time();
    let ctx = ctx();
    let shapes: &[&[usize]] = &[&[40, 70], &[3, 50], &[70]];
    let n: usize = numels(shapes).iter().sum();
    let bytes = (n as u64 + 64 * shapes.len() as u64) * 4;
    let params = user_storage(&ctx, bytes);
    let grads = user_storage(&ctx, bytes);
    let mut at = 0u64;
    let external = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let range = |buffer: &wgpu::Buffer| BufferRange {
                buffer: buffer.clone(),
                offset: at * 4,
            };
            let t = ExternalTensor {
                name: format!("t{i}"),
                shape: s.to_vec(),
                params: range(&params),
                grads: range(&grads),
            };
            // Each tensor on the device's storage alignment (256 bytes at most).
            at = (at + s.iter().product::<usize>() as u64).next_multiple_of(64);
            t
        })
        .collect();
    let options = ArenaOptions {
        external,
        ..Default::default()
    };
    let pooled = ParamSet::new(&ctx, &[], options).unwrap();
    let own = set_of(&ctx, shapes, None);
    let mut results = Vec::new();
    for mut set in [pooled, own] {
        set.upload_params(&data(n, 2, 1.0)).unwrap();
        let mut opt = Adafactor::new(&set, AdafactorConfig::examples().remove(0)).unwrap();
        for step in 0..3 {
            set.upload_grads(&data(n, 10 + step, 1.0)).unwrap();
            opt.step(&mut set, &clipped()).unwrap();
        }
        results.push((set.download_params().unwrap(), states(&opt)));
    }
    assert_bits_eq(&results[0].0, &results[1].0, "pooled vs own: params");
    for k in 0..3 {
        assert_bits_eq(&results[0].1[k], &results[1].1[k], "pooled vs own: states");
    }
}

/// bf16 gradients with f32 master weights step the masters as an f32 set fed the same
/// (bf16-exact) gradients: the same bits.
#[test]
fn bf16_matrices_with_master_weights_step_like_f32() {
    let _serial = one_at_a_time();
    let ctx = ctx();
    let shapes: &[&[usize]] = &[&[130, 70], &[70]];
    let n: usize = numels(shapes).iter().sum();
    let specs: Vec<TensorSpec> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| TensorSpec::new(format!("t{i}"), s.to_vec()))
        .collect();
    let bf16 = ArenaOptions {
        dtype: Dtype::Bf16,
        master_weights: true,
        ..Default::default()
    };
    let half = ParamSet::new(&ctx, &specs, bf16).unwrap();
    assert!(half.has_master_weights());
    let full = set_of(&ctx, shapes, None);
    let round = |v: Vec<f32>| -> Vec<f32> {
        v.into_iter()
            .map(|x| reference::bf16_to_f32(reference::f32_to_bf16(x)))
            .collect()
    };
    let mut results = Vec::new();
    for mut set in [half, full] {
        set.upload_params(&data(n, 2, 1.0)).unwrap();
        let mut opt = Adafactor::new(&set, AdafactorConfig::default()).unwrap();
        for step in 0..3 {
            set.upload_grads(&round(data(n, 10 + step, 1.0))).unwrap();
            opt.step(&mut set, &clipped()).unwrap();
        }
        results.push(set.download_params().unwrap());
    }
    assert_bits_eq(&results[0], &results[1], "bf16 master vs f32");
}

/// Lines longer than Mesa's software drivers let one invocation loop (65,535 turns in all,
/// silently): a row mean over 70,001 rows, a column of 70,001 rows folded from its tiles,
/// a row of 300,007 columns.
#[test]
fn lines_past_the_software_drivers_loop_limit_match_the_reference() {
    let _serial = one_at_a_time();
    let shapes: &[&[usize]] = &[&[70_001, 2], &[2, 300_007], &[3, 70_001, 1]];
    let config = AdafactorConfig::examples().remove(0);
    steps_match(&ctx(), config, clipped(), shapes, None);
}
