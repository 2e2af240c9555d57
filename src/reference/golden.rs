//! The reference held to its anchors: `fixtures/pytorch.json`, written by
//! `scripts/make_fixtures.py` (PyTorch's single-tensor CPU loops in float32), and
//! `fixtures/optax.json`, written by `scripts/make_optax_fixtures.py` (Optax, op by op).

use serde_json::Value;

use super::*;
use crate::consts::tolerance::{
    CLIPPED_REL, NORM_REL, PYTORCH_STEP_ABS, P_NORM_REL, UPDATE_ABS, UPDATE_ULPS,
};

fn fixtures() -> Value {
    let text = include_str!("../../fixtures/pytorch.json");
    serde_json::from_str(text).expect("fixtures/pytorch.json parses")
}

/// A fixture's array of numbers as f32s (the fixtures hold each f32 exactly).
pub(crate) fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn tensors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("an array of tensors")
        .iter()
        .map(f32s)
        .collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number"))
}

fn norm_type(v: &Value) -> f32 {
    match &v["norm_type"] {
        Value::String(s) if s == "inf" => f32::INFINITY,
        x => x.as_f64().expect("norm_type") as f32,
    }
}

fn tol(norm_type: f32) -> f64 {
    if [1.0, 2.0, f32::INFINITY].contains(&norm_type) {
        NORM_REL
    } else {
        P_NORM_REL
    }
}

fn assert_rel(got: f32, want: f32, tol: f64, what: &str) {
    let err = (f64::from(got) - f64::from(want)).abs();
    assert!(
        err <= tol * f64::from(want).abs(),
        "{what}: reference {got:e}, PyTorch {want:e}, relative error {:e} > {tol:e}",
        err / f64::from(want).abs()
    );
}

fn assert_all_rel(got: &[f32], want: &[f32], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert_rel(g, w, tol, &format!("{what}[{i}]"));
    }
}

/// Within a reference step's distance of PyTorch's (`UPDATE_ULPS`, `UPDATE_ABS`, or
/// `PYTORCH_STEP_ABS` where ATen fuses what clipstep rounds on its own).
pub(crate) fn assert_ulps(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= UPDATE_ABS
                || ulps(g, w) <= UPDATE_ULPS
                || (g - w).abs() <= PYTORCH_STEP_ABS,
            "{what}[{i}]: reference {g:e}, PyTorch {w:e} ({} ulp)",
            ulps(g, w)
        );
    }
}

#[test]
fn norms_match_pytorch() {
    let f = fixtures();
    let grads = tensors(&f["grads"]);
    let views: Vec<&[f32]> = grads.iter().map(Vec::as_slice).collect();
    for case in f["norms"].as_array().unwrap() {
        let p = norm_type(case);
        let what = format!("norm_type {p}");
        assert_rel(
            global_norm(&views, p),
            num(case, "total") as f32,
            tol(p),
            &what,
        );
        assert_all_rel(
            &per_tensor_norms(&views, p),
            &f32s(&case["per_tensor"]),
            tol(p),
            &format!("{what}, per tensor"),
        );
    }
}

#[test]
fn clip_grad_norm_matches_pytorch() {
    let f = fixtures();
    for case in f["norms"].as_array().unwrap() {
        let p = norm_type(case);
        let mut grads = tensors(&f["grads"]);
        let mut views: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        let total = clip_grad_norm(&mut views, num(case, "max_norm") as f32, p);
        let what = format!("clip_grad_norm_ norm_type {p}");
        assert_rel(total, num(case, "clip_total") as f32, tol(p), &what);
        for (t, want) in tensors(&case["clipped"]).iter().enumerate() {
            assert_all_rel(
                &grads[t],
                want,
                CLIPPED_REL.max(tol(p)),
                &format!("{what}, tensor {t}"),
            );
        }
    }
}

#[test]
fn clip_grads_with_norm_and_clip_grad_value_match_pytorch_exactly() {
    let f = fixtures();
    let case = &f["clip_grads_with_norm"];
    let mut grads = tensors(&f["grads"]);
    let mut views: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    clip_grads_with_norm(
        &mut views,
        num(case, "max_norm") as f32,
        num(case, "total_norm") as f32,
    );
    assert_eq!(grads, tensors(&case["clipped"]), "clip_grads_with_norm_");

    let case = &f["clip_grad_value"];
    let mut grads = tensors(&f["grads"]);
    let mut views: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    clip_grad_value(&mut views, num(case, "clip_value") as f32);
    assert_eq!(grads, tensors(&case["clipped"]), "clip_grad_value_");
}

/// One optimizer step of the reference from Optax's state before it (Optax's keyword
/// arguments; PyTorch's cases run through the rule registry, `src/optim/golden.rs`).
fn reference_step(
    name: &str, kw: &Value, params: &mut [f32], grad: &[f32],
    state: &mut std::collections::BTreeMap<String, Vec<f32>>,
) {
    let get = |k: &str, default: f64| kw.get(k).and_then(Value::as_f64).unwrap_or(default);
    let n = params.len();
    let mut take = |k: &str| state.remove(k).unwrap_or_else(|| vec![0.0; n]);
    match name {
        // Optax's keyword arguments (fixtures/optax.json).
        "Lion" => {
            let mut m = take("exp_avg");
            let betas = (get("b1", 0.9), get("b2", 0.99));
            lion(
                TensorStep {
                    params,
                    grads: grad,
                    shape: &[],
                    states: [Some(&mut m), None, None],
                },
                get("learning_rate", 1e-4),
                betas,
                get("weight_decay", 1e-3),
            );
            state.insert("exp_avg".into(), m);
        }
        other => panic!("no reference for optimizer {other}"),
    }
}

/// Each step of each optimizer case of fixture `f`, started from the fixture's parameters
/// and states before it, lands within the update tolerance of the fixture's after it.
fn optimizer_steps_match(f: &Value) {
    for case in f["optimizers"].as_array().unwrap() {
        let name = case["optimizer"].as_str().unwrap();
        let kw = &case["kwargs"];
        let mut params = f32s(&case["params"]);
        let mut state = std::collections::BTreeMap::new();
        for (k, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let what = format!("{name} {kw} step {}", k + 1);
            reference_step(name, kw, &mut params, &f32s(&step["grad"]), &mut state);
            assert_ulps(&params, &f32s(&step["params"]), &format!("{what}: params"));
            let want = step["state"].as_object().unwrap();
            assert_eq!(
                state.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{what}: state names"
            );
            for (key, values) in want {
                assert_ulps(&state[key], &f32s(values), &format!("{what}: {key}"));
                // The next step starts from the fixture's state, so errors do not accumulate.
                state.insert(key.clone(), f32s(values));
            }
            params = f32s(&step["params"]);
        }
    }
}

// SGD, Adam, AdamW, RMSprop, Adagrad (and every rule PyTorch has) against PyTorch, step
// by step: `src/optim/golden.rs`, through the rule registry.

fn optax_fixtures() -> Value {
    let text = include_str!("../../fixtures/optax.json");
    serde_json::from_str(text).expect("fixtures/optax.json parses")
}

/// Lion against Optax (`fixtures/optax.json`, `scripts/make_optax_fixtures.py`), step by step.
#[test]
fn optimizer_steps_match_optax() {
    optimizer_steps_match(&optax_fixtures());
}

/// `clip_by_block_rms` against Optax's: within an ulp (Optax divides by the denominator,
/// the reference multiplies by its reciprocal), tensors under the threshold untouched.
#[test]
fn clip_by_block_rms_matches_optax() {
    let case = &optax_fixtures()["clip_by_block_rms"];
    let mut grads = tensors(&case["grads"]);
    let mut views: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    clip_by_block_rms(&mut views, num(case, "threshold") as f32);
    for (got, want) in grads.iter().zip(tensors(&case["clipped"])) {
        assert_ulps(got, &want, "clip_by_block_rms");
    }
    let untouched = tensors(&case["grads"])[0].clone();
    assert_eq!(
        grads[0], untouched,
        "a tensor under the threshold is unchanged"
    );
}

/// LARS and LAMB against Optax over three tensors, step by step from Optax's parameters and
/// states before each step: every tensor its own trust ratio.
#[test]
fn trust_ratio_steps_match_optax() {
    let f = optax_fixtures();
    for case in f["trust"].as_array().unwrap() {
        let name = case["optimizer"].as_str().unwrap();
        let kw = &case["kwargs"];
        let get = |k: &str, default: f64| kw.get(k).and_then(Value::as_f64).unwrap_or(default);
        let mut params = tensors(&case["params"]);
        let keys: Vec<&str> = match name {
            "LARS" => vec!["momentum_buffer"],
            _ => vec!["exp_avg", "exp_avg_sq"],
        };
        let mut states: Vec<Vec<Vec<f32>>> = keys
            .iter()
            .map(|_| params.iter().map(|p| vec![0.0; p.len()]).collect())
            .collect();
        for (k, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let grads = tensors(&step["grads"]);
            for t in 0..params.len() {
                let (p, g) = (&mut params[t], &grads[t]);
                if name == "LARS" {
                    lars(
                        TensorStep {
                            params: p,
                            grads: g,
                            shape: &[],
                            states: [Some(&mut states[0][t]), None, None],
                        },
                        get("learning_rate", 0.1),
                        get("weight_decay", 0.0),
                        get("trust_coefficient", 0.001),
                        get("eps", 0.0),
                        true,
                        get("momentum", 0.9),
                        kw.get("nesterov").and_then(Value::as_bool).unwrap_or(false),
                    );
                } else {
                    let (m, v) = states.split_at_mut(1);
                    lamb(
                        TensorStep {
                            params: p,
                            grads: g,
                            shape: &[],
                            states: [Some(&mut m[0][t]), Some(&mut v[0][t]), None],
                        },
                        k as u32 + 1,
                        get("learning_rate", 1e-3),
                        (get("b1", 0.9), get("b2", 0.999)),
                        get("eps", 1e-6),
                        get("eps_root", 0.0),
                        get("weight_decay", 0.0),
                    );
                }
            }
            let what = format!("{name} {kw} step {}", k + 1);
            let want = tensors(&step["params"]);
            for (got, want) in params.iter().zip(&want) {
                assert_ulps(got, want, &format!("{what}: params"));
            }
            for (key, state) in keys.iter().zip(&mut states) {
                let want = tensors(&step["state"][*key]);
                for (got, want) in state.iter().zip(&want) {
                    assert_ulps(got, want, &format!("{what}: {key}"));
                }
                *state = want;
            }
            params = want;
        }
    }
}

/// Adaptive clipping of each tensor of `case` under `units`, against the case's `clipped`.
fn adaptive_clip_matches(case: &Value, units: Units, what: &str) {
    let shapes: Vec<Vec<usize>> = case["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect()
        })
        .collect();
    let (params, mut grads) = (tensors(&case["params"]), tensors(&case["grads"]));
    let want = tensors(&case["clipped"]);
    let (clipping, eps) = (num(case, "clipping") as f32, num(case, "eps") as f32);
    let mut changed = 0;
    for t in 0..shapes.len() {
        let before = grads[t].clone();
        adaptive_clip(&params[t], &mut grads[t], &shapes[t], clipping, eps, units).unwrap();
        assert_ulps(
            &grads[t],
            &want[t],
            &format!("{what}: tensor of shape {:?}", shapes[t]),
        );
        changed += usize::from(before != grads[t]);
    }
    assert!(changed > 0, "{what}: the fixture clips nothing");
}

/// Adaptive clipping with PyTorch's units (timm's `adaptive_clip_grad`) and with Optax's
/// (`adaptive_grad_clip`), each against its own anchor.
#[test]
fn adaptive_clip_matches_timm_and_optax() {
    adaptive_clip_matches(&fixtures()["adaptive_clip_grad"], Units::Leading, "timm");
    adaptive_clip_matches(
        &optax_fixtures()["adaptive_grad_clip"],
        Units::Trailing,
        "Optax",
    );
}

fn precision_fixtures() -> Value {
    let text = include_str!("../../fixtures/precision.json");
    serde_json::from_str(text).expect("fixtures/precision.json parses")
}

/// f32 → bf16 and f32 → f16 are PyTorch's to the bit on every non-NaN pattern of the
/// fixture (ties, subnormals, overflow edges, every exponent); a NaN stays a NaN (PyTorch's
/// own NaN bits depend on its code path: 0xffff from its vectorized bf16 conversion,
/// 0x7fc0 from the scalar one).
#[test]
fn conversions_match_pytorch() {
    let fixtures = precision_fixtures();
    let cases = fixtures["conversions"].as_array().expect("conversions");
    assert!(cases.len() > 600);
    for case in cases {
        let bits = case["f32"].as_u64().expect("f32 bits") as u32;
        let x = f32::from_bits(bits);
        let (bf16, f16) = (
            case["bf16"].as_u64().unwrap() as u16,
            case["f16"].as_u64().unwrap() as u16,
        );
        if x.is_nan() {
            assert!(bf16_to_f32(f32_to_bf16(x)).is_nan() && bf16_to_f32(bf16).is_nan());
            assert!(f16_to_f32(f32_to_f16(x)).is_nan() && f16_to_f32(f16).is_nan());
            continue;
        }
        assert_eq!(f32_to_bf16(x), bf16, "bf16 of {bits:#010x}");
        assert_eq!(f32_to_f16(x), f16, "f16 of {bits:#010x}");
    }
}

/// The loss scale's state sequence is `torch._amp_update_scale_`'s, bit for bit, over
/// scripted overflow patterns (growth, back-off, back-off into the subnormals, growth
/// stopped short of +Inf, factors other than 2).
#[test]
fn loss_scale_sequences_match_pytorch() {
    let fixtures = precision_fixtures();
    for case in fixtures["scalers"].as_array().expect("scalers") {
        let mut state = ScaleState {
            scale: num(case, "init_scale") as f32,
            growth_tracker: 0,
            hysteresis_left: 1,
        };
        let found = case["found_inf"].as_array().expect("found_inf");
        let after = case["after"].as_array().expect("after");
        for (k, (inf, want)) in found.iter().zip(after).enumerate() {
            state = update_scale(
                state,
                inf.as_bool().expect("a flag"),
                num(case, "growth_factor") as f32,
                num(case, "backoff_factor") as f32,
                num(case, "growth_interval") as u32,
                1,
            );
            assert_eq!(
                state.scale.to_bits(),
                (num(want, "scale") as f32).to_bits(),
                "update {k}"
            );
            assert_eq!(
                u64::from(state.growth_tracker),
                want["growth_tracker"].as_u64().unwrap()
            );
        }
    }
}
