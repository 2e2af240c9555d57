//! Each example's core at a small size, so the examples cannot rot.
//!
//! Every example declares `mod support;`, so the shared support module is compiled once
//! per example included here.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[allow(dead_code)]
#[path = "../examples/train_on_gpu.rs"]
mod train_on_gpu;

#[allow(dead_code)]
#[path = "../examples/exploding_gradients.rs"]
mod exploding_gradients;

#[allow(dead_code)]
#[path = "../examples/gradient_field.rs"]
mod gradient_field;

#[allow(dead_code)]
#[path = "../examples/checkpoint_interop.rs"]
mod checkpoint_interop;
#[allow(dead_code)]
#[path = "../examples/linear_regression.rs"]
mod linear_regression;
#[allow(dead_code)]
#[path = "../examples/train_mixed.rs"]
mod train_mixed;

use std::path::{Path, PathBuf};

use clipstep::consts::tolerance::{TRAINING_LOSS_REL, TRAJECTORY_REL};

fn out(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clipstep-examples-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PNG file of a plausible size for a chart with text.
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > 10_000,
        "{} is suspiciously small",
        path.display()
    );
}

#[test]
fn quickstart_step_matches_the_reference() {
    let s = quickstart::run().unwrap();
    assert!(
        s.clip_coef < 1.0,
        "the quickstart's gradients should engage the clip"
    );
    assert!(s.max_rel_error <= f64::from(TRAJECTORY_REL), "{s:?}");
}

#[test]
fn training_on_the_gpu_agrees_with_the_cpu_loop() {
    let args = train_on_gpu::Args {
        out: out("train"),
        steps: 40,
        log_every: 10,
    };
    let (gpu, cpu) = train_on_gpu::run(&args).unwrap();
    assert_eq!(gpu.len(), cpu.len());
    for (&(s, g), &(_, c)) in gpu.iter().zip(&cpu) {
        assert!(
            (g - c).abs() <= TRAINING_LOSS_REL * c.abs(),
            "step {s}: {g} vs {c}"
        );
    }
    assert!(
        gpu.last().unwrap().1 < 0.5 * gpu[0].1,
        "the loss should fall"
    );
}

/// bf16 and f16 runs with f32 master weights and a fast-growing dynamic scale follow the
/// f32 run; the f16 scale overflows (skipped steps) and backs off, the bf16 one does not.
#[test]
fn mixed_precision_training_follows_the_f32_run() {
    let args = train_mixed::Args {
        run: train_mixed::f32_run::Args {
            out: out("mixed"),
            steps: 80,
            log_every: 10,
        },
        growth_interval: 4,
    };
    let (f32_curve, bf16, f16) = train_mixed::run(&args).unwrap();
    assert_eq!(
        bf16.skipped, 0,
        "bf16 reaches 3e38: no overflow at these scales"
    );
    assert!(
        f16.skipped > 0,
        "f16 overflows at 65504 once the scale has grown"
    );
    let (f16_scale, bf16_scale) = (f16.curve.last().unwrap().2, bf16.curve.last().unwrap().2);
    assert!(
        f16_scale < bf16_scale,
        "the f16 scale backed off: {f16_scale} vs {bf16_scale}"
    );
    // f16 lags by the steps it skipped.
    for (run, tol) in [(&bf16, 0.1), (&f16, 0.3)] {
        for (&(s, want, _), &(_, got, _)) in f32_curve.iter().zip(&run.curve) {
            assert!(
                (got - want).abs() <= tol * want,
                "step {s}: {got} vs f32 {want}"
            );
        }
    }
    assert!(
        bf16.curve.last().unwrap().1 < 0.5 * bf16.curve[0].1,
        "the loss falls"
    );
}

#[test]
fn exploding_gradients_are_tamed_by_clipping_and_plotted() {
    let args = exploding_gradients::Args {
        out: out("exploding"),
        steps: 30,
        seq_len: 40,
        max_norm: 1.0,
        clip_value: 0.1,
    };
    let runs = exploding_gradients::run(&args).unwrap();
    let by = |label: &str| runs.iter().find(|r| r.label == label).unwrap();
    let wild = by("SGD, no clipping");
    assert!(
        wild.losses.iter().any(|l| !l.is_finite() || *l > 1e6),
        "unclipped SGD should explode"
    );
    let tame = by("SGD, clip by norm");
    assert!(
        tame.losses.last().unwrap() < &tame.losses[0],
        "clipped SGD should improve"
    );
    exploding_gradients::plot(&args, &runs).unwrap();
    assert_png(&args.out.join("loss_curves.png"));
    assert_png(&args.out.join("grad_norms.png"));
}

#[test]
fn gradient_field_is_clipped_per_point_and_plotted() {
    let args = gradient_field::Args {
        out: out("field"),
        max_norm: 1.5,
        grid: 7,
    };
    let field = gradient_field::run(&args).unwrap();
    for (&(rx, ry), &(cx, cy)) in field.raw.iter().zip(&field.clipped) {
        let (raw, clipped) = ((rx * rx + ry * ry).sqrt(), (cx * cx + cy * cy).sqrt());
        assert!(clipped <= 1.5 + TRAJECTORY_REL, "clipped norm {clipped}");
        if raw <= 1.5 {
            assert_eq!((rx, ry), (cx, cy), "short gradients are untouched");
        } else {
            assert!(
                (rx * cy - ry * cx).abs() <= TRAJECTORY_REL * raw,
                "direction kept"
            );
        }
    }
    assert_png(&gradient_field::plot(&args, &field).unwrap());
}

#[test]
fn linear_regression_gpu_and_cpu_weights_agree() {
    let args = linear_regression::Args {
        out: out("linreg"),
        epochs: 20,
        clip_value: 0.5,
        lr: 0.1,
    };
    let (gpu, cpu) = linear_regression::run(&args).unwrap();
    for (g, c) in gpu.weights.iter().zip(&cpu.weights) {
        assert!((g - c).abs() <= TRAJECTORY_REL, "{g} vs {c}");
    }
    assert!(gpu.losses.last().unwrap() < &(0.5 * gpu.losses[0]));
}

#[test]
fn the_interop_checkpoint_and_its_description_agree() {
    let dir = out("interop");
    checkpoint_interop::run(&dir).unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected["step"], 3);
    assert_eq!(expected["tensors"].as_array().unwrap().len(), 5);
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    // A safetensors file: an 8-byte header length, then the JSON header.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header["__metadata__"]["format"], "clipstep");
    assert_eq!(
        header["encoder.layer.0.weight.exp_avg"]["shape"],
        serde_json::json!([3, 5])
    );
    assert_eq!(
        header["temperature.max_exp_avg_sq"]["shape"],
        serde_json::json!([])
    );
}
