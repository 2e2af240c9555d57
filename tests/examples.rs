//! Each example run as its user runs it, at a small size: its binary (which `cargo test`
//! builds beside the tests), its exit status, and what it measured (the JSON it writes to
//! `--out`) checked, so the examples cannot rot. The children inherit the environment, so
//! they run on the suite's backend (`WGPU_BACKEND`).

use std::path::{Path, PathBuf};
use std::process::Command;

use clipstep::consts::tolerance::{
    BF16_TRAINING_LOSS_REL, F16_TRAINING_LOSS_REL, TRAINING_LOSS_REL, TRAJECTORY_REL,
};
use serde_json::Value;

/// A fresh output folder for one example.
fn out(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clipstep-examples-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The example's binary: `target/<profile>/examples/<name>`, beside this test's
/// `target/<profile>/deps/`.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{}: not built (`cargo test` builds the examples; or `cargo build --examples`)",
        path.display()
    );
    path
}

/// Runs example `name` with `args` (split at white space), asserts it succeeded, and
/// returns its output folder.
fn run(name: &str, args: &str) -> PathBuf {
    let dir = out(name);
    let output = Command::new(binary(name))
        .args(args.split_whitespace())
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name} {args}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

/// The JSON file `dir/<name>.json`.
fn json(dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// A JSON number as f64; `null` (how serde_json writes NaN and ±Inf) as NaN.
fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// A JSON array of `[step, value, ...]` rows: each row's `k`-th entry.
fn column(curve: &Value, k: usize) -> Vec<f64> {
    curve
        .as_array()
        .unwrap()
        .iter()
        .map(|row| num(&row[k]))
        .collect()
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
    let s = json(&run("quickstart", ""), "quickstart");
    assert!(
        num(&s["clip_coef"]) < 1.0,
        "the quickstart's gradients should engage the clip"
    );
    assert!(num(&s["max_rel_error"]) <= f64::from(TRAJECTORY_REL), "{s}");
}

#[test]
fn training_on_the_gpu_agrees_with_the_cpu_loop() {
    let dir = run("train_on_gpu", "--steps 40 --log-every 10");
    let runs = json(&dir, "train_on_gpu");
    let (gpu, cpu) = (column(&runs[0], 1), column(&runs[1], 1));
    assert_eq!(gpu.len(), cpu.len());
    assert_eq!(gpu.len(), 5, "steps 0, 10, 20, 30 and 39");
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!(
            (g - c).abs() <= f64::from(TRAINING_LOSS_REL) * c.abs(),
            "{g} vs {c}"
        );
    }
    assert!(gpu[gpu.len() - 1] < 0.5 * gpu[0], "the loss should fall");
    assert_png(&dir.join("train_loss.png"));
}

/// bf16 and f16 runs with f32 master weights and a fast-growing dynamic scale follow the
/// f32 run; the f16 scale overflows (skipped steps) and backs off, the bf16 one does not.
#[test]
fn mixed_precision_training_follows_the_f32_run() {
    let args = "--steps 80 --log-every 10 --growth-interval 4";
    let dir = run("train_mixed", args);
    let runs = json(&dir, "train_mixed");
    let (f32_run, bf16, f16) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(
        bf16["skipped"], 0,
        "bf16 reaches 3e38: no overflow at these scales"
    );
    assert!(
        num(&f16["skipped"]) > 0.0,
        "f16 overflows at 65504 once the scale has grown"
    );
    let last_scale = |run: &Value| *column(&run["curve"], 2).last().unwrap();
    let (f16_scale, bf16_scale) = (last_scale(f16), last_scale(bf16));
    assert!(
        f16_scale < bf16_scale,
        "the f16 scale backed off: {f16_scale} vs {bf16_scale}"
    );
    // f16 lags by the steps it skipped.
    let want = column(f32_run, 1);
    for (run, tol) in [(bf16, BF16_TRAINING_LOSS_REL), (f16, F16_TRAINING_LOSS_REL)] {
        let got = column(&run["curve"], 1);
        assert_eq!(got.len(), want.len());
        for (got, want) in got.iter().zip(&want) {
            assert!(
                (got - want).abs() <= f64::from(tol) * want,
                "{got} vs f32 {want}"
            );
        }
    }
    let bf16_loss = column(&bf16["curve"], 1);
    assert!(
        bf16_loss[bf16_loss.len() - 1] < 0.5 * bf16_loss[0],
        "the loss falls"
    );
    assert_png(&dir.join("train_mixed_loss.png"));
    assert_png(&dir.join("train_mixed_scale.png"));
}

#[test]
fn exploding_gradients_are_tamed_by_clipping_and_plotted() {
    let args = "--steps 30 --seq-len 40 --max-norm 1 --clip-value 0.1";
    let dir = run("exploding_gradients", args);
    let runs = json(&dir, "exploding_gradients");
    let by = |label: &str| {
        let run = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["label"] == label);
        let losses = &run.unwrap_or_else(|| panic!("no run {label}"))["losses"];
        losses
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect::<Vec<_>>()
    };
    let wild = by("SGD, no clipping");
    assert!(
        wild.iter().any(|l| !l.is_finite() || *l > 1e6),
        "unclipped SGD should explode"
    );
    let tame = by("SGD, clip by norm");
    assert!(tame[tame.len() - 1] < tame[0], "clipped SGD should improve");
    assert_png(&dir.join("loss_curves.png"));
    assert_png(&dir.join("grad_norms.png"));
}

#[test]
fn gradient_field_is_clipped_per_point_and_plotted() {
    let dir = run("gradient_field", "--max-norm 1.5 --grid 7");
    let field = json(&dir, "gradient_field");
    let points = |key: &str| -> Vec<(f64, f64)> {
        let v = field[key].as_array().unwrap();
        v.iter().map(|p| (num(&p[0]), num(&p[1]))).collect()
    };
    let (raw, clipped) = (points("raw"), points("clipped"));
    assert_eq!(raw.len(), 49);
    let tol = f64::from(TRAJECTORY_REL);
    for (&(rx, ry), &(cx, cy)) in raw.iter().zip(&clipped) {
        let (r, c) = ((rx * rx + ry * ry).sqrt(), (cx * cx + cy * cy).sqrt());
        assert!(c <= 1.5 + tol, "clipped norm {c}");
        if r <= 1.5 {
            assert_eq!((rx, ry), (cx, cy), "short gradients are untouched");
        } else {
            assert!((rx * cy - ry * cx).abs() <= tol * r, "direction kept");
        }
    }
    let pngs = std::fs::read_dir(&dir).unwrap().flatten();
    let png = pngs
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "png"));
    assert_png(&png.expect("the example plots the field"));
}

#[test]
fn linear_regression_gpu_and_cpu_weights_agree() {
    let args = "--epochs 20 --clip-value 0.5 --lr 0.1";
    let fits = json(&run("linear_regression", args), "linear_regression");
    let values = |v: &Value| v.as_array().unwrap().iter().map(num).collect::<Vec<_>>();
    let (gpu, cpu) = (values(&fits[0]["weights"]), values(&fits[1]["weights"]));
    assert_eq!(gpu.len(), cpu.len());
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!((g - c).abs() <= f64::from(TRAJECTORY_REL), "{g} vs {c}");
    }
    let losses = values(&fits[0]["losses"]);
    assert!(losses[losses.len() - 1] < 0.5 * losses[0]);
}

#[test]
fn the_interop_checkpoint_and_its_description_agree() {
    let dir = out("interop");
    let status = Command::new(binary("checkpoint_interop"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "checkpoint_interop: {status}");
    let expected = json(&dir, "expected");
    assert_eq!(expected["step"], 3);
    assert_eq!(expected["tensors"].as_array().unwrap().len(), 5);
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    // A safetensors file: an 8-byte header length, then the JSON header.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header["__metadata__"]["format"], "clipstep");
    assert_eq!(
        header["encoder.layer.0.weight.exp_avg"]["shape"],
        serde_json::json!([3, 5])
    );
    assert_eq!(
        header["temperature.max_exp_avg_sq"]["shape"],
        serde_json::json!([])
    );
    // The head's group has no amsgrad: no max_exp_avg_sq of its own (PyTorch's state dict).
    assert!(header["head.weight.max_exp_avg_sq"].is_null());
    assert_eq!(
        header["head.weight.exp_avg"]["shape"],
        serde_json::json!([2, 3, 4])
    );
}

/// torch_resume writes a checkpoint and the 8th step's record for every rule PyTorch has
/// (`scripts/check_torch_resume.py` resumes them in PyTorch where torch is installed).
#[test]
fn torch_resume_writes_every_pytorch_rule() {
    let dir = out("torch_resume");
    let status = Command::new(binary("torch_resume"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "torch_resume: {status}");
    for name in [
        "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "Adadelta", "RAdam", "NAdam",
        "ASGD", "Rprop",
    ] {
        let record = json(&dir, name);
        let numbers =
            |key: &str| -> Vec<f64> { record[key].as_array().unwrap().iter().map(num).collect() };
        let (before, after) = (numbers("before"), numbers("after"));
        assert_eq!((before.len(), after.len()), (20, 20), "{name}");
        let moved = before.iter().zip(&after).any(|(b, a)| b != a);
        assert!(moved, "{name}: the 8th step moved nothing");
        let bytes = std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
        assert_eq!(header["__metadata__"]["optimizer"], name);
        // PyTorch's per-tensor step (SGD has none).
        let step = &header["w.step"]["shape"];
        assert_eq!(step.is_null(), name == "SGD", "{name}: w.step {step}");
    }
    assert!(
        !dir.join("Lion.json").exists(),
        "Optax's rules have no torch.optim class"
    );
    assert!(
        !dir.join("AdamW8bit.json").exists(),
        "bitsandbytes' AdamW8bit has no torch.optim class"
    );
}
