//! Adaptive gradient clipping on the device: against timm's (PyTorch's units) and Optax's
//! numbers, against the CPU backend over many tensors and a million-element unit, and
//! typed errors.

mod common;

use clipstep::consts::tolerance::{CLIPPED_REL, UPDATE_ULPS};
use clipstep::*;
use common::*;
use serde_json::Value;

fn fixture(file: &str, key: &str) -> Value {
    let text = match file {
        "pytorch" => include_str!("../fixtures/pytorch.json"),
        _ => include_str!("../fixtures/optax.json"),
    };
    serde_json::from_str::<Value>(text).unwrap()[key].clone()
}

fn flat(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect()
}

/// The fixture's tensors in a set on `ctx`, clipped under `units`; the gradients after.
fn clip_case(ctx: &Context, case: &Value, units: Units) -> Vec<f32> {
    let specs: Vec<TensorSpec> = case["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let shape: Vec<usize> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            TensorSpec::new(format!("t{i}"), shape)
        })
        .collect();
    let mut set = ctx.param_set(&specs).unwrap();
    set.upload_params(&flat(&case["params"])).unwrap();
    set.upload_grads(&flat(&case["grads"])).unwrap();
    let clipping = case["clipping"].as_f64().unwrap() as f32;
    let eps = case["eps"].as_f64().unwrap() as f32;
    set.clip_adaptive(clipping, eps, units).unwrap();
    set.download_grads().unwrap()
}

#[test]
fn adaptive_clipping_matches_timm_and_optax() {
    let cases = [
        (
            fixture("pytorch", "adaptive_clip_grad"),
            Units::Leading,
            "timm",
        ),
        (
            fixture("optax", "adaptive_grad_clip"),
            Units::Trailing,
            "Optax",
        ),
    ];
    for (case, units, anchor) in cases {
        let gpu = clip_case(&ctx(), &case, units);
        let cpu = clip_case(&Context::cpu(), &case, units);
        let want = flat(&case["clipped"]);
        assert_close_elementwise(&gpu, &want, UPDATE_ULPS, 0.0, &format!("GPU vs {anchor}"));
        assert_close_elementwise(&cpu, &want, UPDATE_ULPS, 0.0, &format!("CPU vs {anchor}"));
    }
}

/// 2,000 tensors of assorted shapes (rows, columns, conv kernels, vectors) over several
/// slabs: the device within the clip tolerance of the CPU backend, under both conventions.
#[test]
fn many_tensors_equal_the_cpu_backend() {
    let shapes: [&[usize]; 5] = [&[7], &[3, 5], &[2, 2, 3, 4], &[1, 9], &[4, 1, 3]];
    let specs: Vec<TensorSpec> = (0..2000)
        .map(|i| TensorSpec::new(format!("t{i}"), shapes[i % shapes.len()]))
        .collect();
    let n: usize = specs.iter().map(|s| s.numel() as usize).sum();
    for units in [Units::Leading, Units::Trailing] {
        let mut runs = Vec::new();
        for ctx in [ctx(), Context::cpu()] {
            let options = ArenaOptions {
                max_slab_bytes: Some(64 * 1024),
                ..Default::default()
            };
            let mut set = ParamSet::new(&ctx, &specs, options).unwrap();
            set.upload_params(&data(n, 1, 1.0)).unwrap();
            set.upload_grads(&data(n, 2, 0.2)).unwrap();
            set.clip_adaptive(0.1, 1e-3, units).unwrap();
            runs.push(set.download_grads().unwrap());
        }
        let what = format!("{units:?}");
        assert_close(&runs[0], &runs[1], CLIPPED_REL, f64::MIN_POSITIVE, &what);
        assert_ne!(runs[0], data(n, 2, 0.2), "{units:?}: nothing was clipped");
    }
}

#[test]
fn unsupported_layouts_and_bad_options_are_typed_errors() {
    let ctx = ctx();
    // A tensor spanning slabs.
    let options = ArenaOptions {
        max_slab_bytes: Some(4096),
        ..Default::default()
    };
    let mut set = ParamSet::new(&ctx, &specs(&[5000]), options).unwrap();
    let err = set.clip_adaptive(0.1, 1e-3, Units::Leading).unwrap_err();
    assert!(matches!(err, Error::NotSupported(_)), "{err}");
    // A rank Optax does not define.
    for ctx in [ctx.clone(), Context::cpu()] {
        let mut set = ctx.param_set(&[TensorSpec::new("x", [2; 6])]).unwrap();
        let err = set.clip_adaptive(0.1, 1e-3, Units::Trailing).unwrap_err();
        assert!(matches!(err, Error::InvalidShape { .. }), "{err}");
        set.clip_adaptive(0.1, 1e-3, Units::Leading).unwrap();
        for (clipping, eps) in [(0.0, 1e-3), (f32::NAN, 1e-3), (0.1, -1.0)] {
            let err = set
                .clip_adaptive(clipping, eps, Units::Leading)
                .unwrap_err();
            assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
        }
    }
}

/// One unit of a million elements (a long vector is one unit), its workgroup striding it.
#[test]
fn a_long_unit_equals_the_cpu_backend() {
    let n = 1_000_003;
    let mut runs = Vec::new();
    for ctx in [ctx(), Context::cpu()] {
        let mut set = ctx.param_set(&specs(&[n])).unwrap();
        set.upload_params(&data(n, 1, 1e-3)).unwrap();
        set.upload_grads(&data(n, 2, 1.0)).unwrap();
        set.clip_adaptive(0.05, 1e-3, Units::Leading).unwrap();
        runs.push(set.download_grads().unwrap());
    }
    assert_ne!(runs[1], data(n, 2, 1.0), "the CPU backend clipped");
    assert_close(
        &runs[0],
        &runs[1],
        CLIPPED_REL,
        f64::MIN_POSITIVE,
        "GPU vs CPU",
    );
}
