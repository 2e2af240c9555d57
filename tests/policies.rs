//! `Nonfinite::ZeroNans` (Optax's `zero_nans`) and `StepOptions::skip_above` (Optax's
//! `skip_large_updates`): held to Optax's own trajectories (`fixtures/optax.json`) on the
//! device and the CPU backend, and bit for bit to their definitions: a ZeroNans step is the
//! Skip step of the gradients with their NaNs zeroed, a step skipped for size changes no bit.

mod common;

use clipstep::consts::tolerance::{CLIPPED_REL, NORM_REL, PYTORCH_STEP_ABS, UPDATE_ULPS};
use clipstep::*;
use common::*;
use serde_json::Value;

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32))
        .collect()
}

/// The Optax policy case `name`.
fn optax_case(name: &str) -> Value {
    let text = include_str!("../fixtures/optax.json");
    let f: Value = serde_json::from_str(text).unwrap();
    f["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["policy"] == name)
        .unwrap()
        .clone()
}

/// Optax's SGD behind the policy, step by step, on the device and on the CPU backend.
fn follows_optax(name: &str, options: StepOptions) {
    let case = optax_case(name);
    for ctx in [ctx(), Context::cpu()] {
        let mut set = ctx.param_set(&specs(&[37])).unwrap();
        set.upload_params(&f32s(&case["params"])).unwrap();
        let config = SgdConfig {
            lr: case["lr"].as_f64().unwrap(),
            ..Default::default()
        };
        let mut opt = Sgd::new(&set, config).unwrap();
        for (k, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            set.upload_grads(&f32s(&step["grad"])).unwrap();
            opt.step(&mut set, &options).unwrap();
            let what = format!("{name} step {} on {}", k + 1, ctx.describe());
            let got = set.download_params().unwrap();
            assert_close_elementwise(
                &got,
                &f32s(&step["params"]),
                UPDATE_ULPS,
                PYTORCH_STEP_ABS,
                &what,
            );
            // The next step starts from Optax's parameters.
            set.upload_params(&f32s(&step["params"])).unwrap();
        }
    }
}

#[test]
fn zero_nans_follows_optax() {
    follows_optax(
        "zero_nans",
        StepOptions {
            nonfinite: Nonfinite::ZeroNans,
            ..Default::default()
        },
    );
}

#[test]
fn skip_large_updates_follows_optax() {
    let bound = optax_case("skip_large_updates")["skip_above"]
        .as_f64()
        .unwrap() as f32;
    follows_optax(
        "skip_large_updates",
        StepOptions {
            skip_above: Some(bound),
            nonfinite: Nonfinite::Propagate,
            ..Default::default()
        },
    );
}

/// `grads` with a NaN every `every` elements (and at both ends).
fn with_nans(mut grads: Vec<f32>, every: usize) -> Vec<f32> {
    let n = grads.len();
    for k in (0..n).step_by(every).chain([n - 1]) {
        grads[k] = f32::NAN;
    }
    grads
}

fn zeroed(grads: &[f32]) -> Vec<f32> {
    grads
        .iter()
        .map(|&g| if g.is_nan() { 0.0 } else { g })
        .collect()
}

/// A clipped AdamW step under ZeroNans is, bit for bit, the Skip step of the gradients with
/// their NaNs zeroed, over several slabs and over 2,000 tensors; the report says NaNs were
/// seen, but the step was taken.
#[test]
fn a_zero_nans_step_is_the_step_of_the_zeroed_gradients() {
    let ctx = ctx();
    let tiny: Vec<usize> = (0..2000).map(|i| 1 + i % 5).collect();
    for (sizes, slab) in [(vec![40_000, 3, 12_345], Some(16 * 1024)), (tiny, None)] {
        let n: usize = sizes.iter().sum();
        let grads = with_nans(data(n, 4, 2.0), 997);
        let mut runs = Vec::new();
        for (g, nonfinite) in [
            (grads.clone(), Nonfinite::ZeroNans),
            (zeroed(&grads), Nonfinite::Skip),
        ] {
            let (mut set, _) = set_with_grads(&ctx, &sizes, slab, 1);
            set.upload_params(&data(n, 2, 1.0)).unwrap();
            let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
            let options = StepOptions {
                clip: Clip::GlobalNorm {
                    max_norm: 1.0,
                    norm: Norm::L2,
                },
                nonfinite,
                ..Default::default()
            };
            let mut states = Vec::new();
            for _ in 0..2 {
                set.upload_grads(&g).unwrap();
                states.push(
                    opt.step(&mut set, &options)
                        .unwrap()
                        .read_blocking()
                        .unwrap(),
                );
            }
            runs.push((
                set.download_params().unwrap(),
                states,
                opt.state("exp_avg").unwrap(),
            ));
        }
        let ((p0, s0, m0), (p1, s1, m1)) = (&runs[0], &runs[1]);
        assert_bits_eq(p0, p1, "params");
        assert_bits_eq(m0, m1, "exp_avg");
        for (a, b) in s0.iter().zip(s1) {
            assert_eq!(a.total_norm.to_bits(), b.total_norm.to_bits());
            assert!(a.nonfinite && !a.skipped && !b.nonfinite, "{a:?}");
        }
        assert_eq!(s0[1].step, 2);
    }
}

/// Under ZeroNans an infinity still skips the step, leaving every bit as it was.
#[test]
fn zero_nans_skips_on_an_infinity() {
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, _) = set_with_grads(&ctx, &[300, 7], None, 1);
        set.upload_params(&data(307, 2, 1.0)).unwrap();
        let before = set.download_params().unwrap();
        let mut grads = with_nans(data(307, 5, 1.0), 50);
        grads[100] = f32::NEG_INFINITY;
        set.upload_grads(&grads).unwrap();
        let mut opt = Adam::new(&set, AdamConfig::default()).unwrap();
        let options = StepOptions {
            nonfinite: Nonfinite::ZeroNans,
            ..Default::default()
        };
        let state = opt
            .step(&mut set, &options)
            .unwrap()
            .read_blocking()
            .unwrap();
        assert!(state.nonfinite && state.skipped, "{state:?}");
        assert_eq!(opt.step_count().unwrap(), 0);
        assert_bits_eq(&set.download_params().unwrap(), &before, "params");
        assert!(opt.state("exp_avg").unwrap().iter().all(|&m| m == 0.0));
    }
}

/// The standalone clips under ZeroNans write 0 for each NaN and equal the clips of the
/// zeroed gradients, bit for bit, on the device and on the CPU backend.
#[test]
fn standalone_clips_zero_the_nans() {
    let sizes = [5000, 1, 64, 777];
    let n: usize = sizes.iter().sum();
    let grads = with_nans(data(n, 6, 3.0), 101);
    for ctx in [ctx(), Context::cpu()] {
        type Clip = fn(&mut ParamSet, Nonfinite) -> StepState;
        let clips: [(&str, Clip); 2] = [
            ("clip_grad_norm", |s, p| {
                let r = s.clip_grad_norm(1.0, Norm::L2, p).unwrap();
                r.read_blocking().unwrap()
            }),
            ("per tensor", |s, p| {
                let r = s.clip_grad_norm_per_tensor(0.5, Norm::L1, p).unwrap();
                r.read_blocking().unwrap()
            }),
        ];
        for (what, clip) in clips {
            let (mut a, _) = set_with_grads(&ctx, &sizes, Some(8192), 1);
            let (mut b, _) = set_with_grads(&ctx, &sizes, Some(8192), 1);
            a.upload_grads(&grads).unwrap();
            b.upload_grads(&zeroed(&grads)).unwrap();
            let sa = clip(&mut a, Nonfinite::ZeroNans);
            let sb = clip(&mut b, Nonfinite::Skip);
            let what = format!("{what} on {}", ctx.describe());
            assert_bits_eq(
                &a.download_grads().unwrap(),
                &b.download_grads().unwrap(),
                &what,
            );
            assert_eq!(sa.total_norm.to_bits(), sb.total_norm.to_bits(), "{what}");
            assert!(sa.nonfinite && !sa.skipped, "{what}: {sa:?}");
        }
    }
}

/// A step whose norm is not below `skip_above` changes no bit (parameters, states, step
/// count) on the device and on the CPU backend, under every policy, a NaN norm included;
/// one below it is taken.
#[test]
fn steps_above_the_bound_are_skipped() {
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, grads) = set_with_grads(&ctx, &[1000, 37], Some(2048), 1);
        set.upload_params(&data(1037, 2, 1.0)).unwrap();
        let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
        let norm = reference::global_norm(&[&grads], 2.0);
        for nonfinite in [Nonfinite::Skip, Nonfinite::Propagate, Nonfinite::ZeroNans] {
            let options = StepOptions {
                nonfinite,
                skip_above: Some(norm),
                ..Default::default()
            };
            let before = (
                set.download_params().unwrap(),
                opt.state("exp_avg").unwrap(),
            );
            let state = opt
                .step(&mut set, &options)
                .unwrap()
                .read_blocking()
                .unwrap();
            assert!(
                state.skipped && !state.nonfinite,
                "{nonfinite:?}: {state:?}"
            );
            assert_bits_eq(&set.download_params().unwrap(), &before.0, "params");
            assert_bits_eq(&opt.state("exp_avg").unwrap(), &before.1, "exp_avg");
            assert_eq!(opt.step_count().unwrap(), 0);
        }
        // A NaN norm skips even under Propagate.
        let mut poisoned = grads.clone();
        poisoned[3] = f32::NAN;
        set.upload_grads(&poisoned).unwrap();
        let options = StepOptions {
            nonfinite: Nonfinite::Propagate,
            skip_above: Some(1e30),
            ..Default::default()
        };
        let state = opt
            .step(&mut set, &options)
            .unwrap()
            .read_blocking()
            .unwrap();
        assert!(state.skipped, "{state:?}");
        set.upload_grads(&grads).unwrap();
        let options = StepOptions {
            skip_above: Some(norm * 1.01),
            ..Default::default()
        };
        let state = opt
            .step(&mut set, &options)
            .unwrap()
            .read_blocking()
            .unwrap();
        assert!(!state.skipped && state.step == 1, "{state:?}");
    }
}

#[test]
fn a_bad_bound_is_a_typed_error() {
    let (mut set, _) = set_with_grads(&ctx(), &[10], None, 1);
    let mut opt = Sgd::new(&set, SgdConfig::default()).unwrap();
    for bound in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let options = StepOptions {
            skip_above: Some(bound),
            ..Default::default()
        };
        let err = opt.step(&mut set, &options).err().unwrap();
        assert!(matches!(err, Error::InvalidSkipBound(_)), "{err}");
    }
    assert_eq!(opt.step_count().unwrap(), 0);
}

/// `ParamSet::clip_by_block_rms` against Optax's `clip_by_block_rms` and the reference, on
/// the device and the CPU backend; a bad threshold is a typed error.
#[test]
fn clip_by_block_rms_matches_optax() {
    let text = include_str!("../fixtures/optax.json");
    let f: Value = serde_json::from_str(text).unwrap();
    let case = &f["clip_by_block_rms"];
    let grads: Vec<Vec<f32>> = case["grads"].as_array().unwrap().iter().map(f32s).collect();
    let want: Vec<f32> = case["clipped"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(f32s)
        .collect();
    let threshold = case["threshold"].as_f64().unwrap() as f32;
    let sizes: Vec<usize> = grads.iter().map(Vec::len).collect();
    let mut reference = grads.clone();
    let mut views: Vec<&mut [f32]> = reference.iter_mut().map(Vec::as_mut_slice).collect();
    let norms = reference::clip_by_block_rms(&mut views, threshold);
    let reference: Vec<f32> = reference.concat();
    for ctx in [ctx(), Context::cpu()] {
        let mut set = ctx.param_set(&specs(&sizes)).unwrap();
        set.upload_grads(&grads.concat()).unwrap();
        let report = set.clip_by_block_rms(threshold, Nonfinite::Skip).unwrap();
        let what = format!("clip_by_block_rms on {}", ctx.describe());
        let got = set.download_grads().unwrap();
        let ulps = UPDATE_ULPS;
        assert_close_elementwise(&got, &want, ulps, 0.0, &format!("{what} vs Optax"));
        let floor = f64::MIN_POSITIVE;
        let vs_reference = format!("{what} vs reference");
        assert_close(&got, &reference, CLIPPED_REL, floor, &vs_reference);
        let tensor_norms = report.tensor_norms_blocking().unwrap();
        assert_close(
            &tensor_norms,
            &norms,
            NORM_REL,
            floor,
            &format!("{what}: norms"),
        );
        for bad in [0.0, -1.0, f32::NAN] {
            let err = set.clip_by_block_rms(bad, Nonfinite::Skip).err().unwrap();
            assert!(matches!(err, Error::InvalidBlockRms(_)), "{err}");
        }
    }
}
