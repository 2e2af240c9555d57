//! The textbook loop, step by step: ten weights, mean-squared error, clipping by value and
//! plain SGD. Each epoch computes the gradient on the host, clips it with clipstep's
//! `clip_grad_value`, and applies an SGD step; the same loop runs on the CPU reference, and
//! the weights are printed side by side.
//!
//!     cargo run --release --example linear_regression

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use clipstep::{Context, Optimizer, Sgd, SgdConfig, StepOptions, TensorSpec};
use clipstep_tools::support;

/// Command-line options.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Where the loss table goes (`linear_regression.csv`).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Epochs (one full-batch step each).
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// Clip each gradient component to [-clip_value, clip_value].
    #[arg(long, default_value_t = 0.5)]
    pub clip_value: f32,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f32,
}

const FEATURES: usize = 10;
const SAMPLES: usize = 128;

/// Loss per epoch and final weights, for one backend.
#[derive(serde::Serialize)]
pub struct Fit {
    pub losses: Vec<f32>,
    pub weights: Vec<f32>,
}

/// Inputs X (SAMPLES × FEATURES), targets y = X·w* + noise, and w*.
fn data() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = support::harness::sample_data(SAMPLES * FEATURES, 1, 1.0);
    let w_true: Vec<f32> = (0..FEATURES).map(|i| (i as f32 - 4.5) * 0.4).collect();
    let noise = support::harness::sample_data(SAMPLES, 2, 0.05);
    let y = (0..SAMPLES)
        .map(|n| {
            (0..FEATURES)
                .map(|i| x[n * FEATURES + i] * w_true[i])
                .sum::<f32>()
                + noise[n]
        })
        .collect();
    (x, y, w_true)
}

/// Loss = mean (Xw − y)²; ∂L/∂w = (2/N) Xᵀ(Xw − y).
fn loss_and_grad(w: &[f32], x: &[f32], y: &[f32]) -> (f32, Vec<f32>) {
    let mut grad = vec![0.0f32; FEATURES];
    let mut loss = 0.0f32;
    for n in 0..SAMPLES {
        let row = &x[n * FEATURES..(n + 1) * FEATURES];
        let r = row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() - y[n];
        loss += r * r / SAMPLES as f32;
        for i in 0..FEATURES {
            grad[i] += 2.0 * r * row[i] / SAMPLES as f32;
        }
    }
    (loss, grad)
}

/// Trains on `ctx`, returning the loss per epoch and the final weights.
pub fn fit(ctx: &Context, args: &Args) -> clipstep::Result<Fit> {
    let (x, y, _) = data();
    let mut set = ctx.param_set(&[TensorSpec::new("w", [FEATURES])])?;
    let mut sgd = Sgd::new(
        &set,
        SgdConfig {
            lr: f64::from(args.lr),
            ..Default::default()
        },
    )?;
    let mut losses = Vec::new();
    for _ in 0..args.epochs {
        let w = set.download_params()?;
        let (loss, grad) = loss_and_grad(&w, &x, &y);
        losses.push(loss);
        set.upload_grads(&grad)?;
        set.clip_grad_value(args.clip_value)?; // g ← clamp(g, −c, c)
        sgd.step(&mut set, &StepOptions::default())?; // w ← w − lr·g
    }
    Ok(Fit {
        losses,
        weights: set.download_params()?,
    })
}

/// The fit on the best adapter and on the CPU reference.
pub fn run(args: &Args) -> Result<(Fit, Fit), Box<dyn Error>> {
    Ok((fit(&Context::new()?, args)?, fit(&Context::cpu(), args)?))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.describe());
    let (gpu, cpu) = run(&args)?;
    std::fs::create_dir_all(&args.out)?;
    let mut csv = String::from("epoch,loss_gpu,loss_cpu\n");
    for (e, (g, c)) in gpu.losses.iter().zip(&cpu.losses).enumerate() {
        csv += &format!("{e},{g},{c}\n");
        if e % 5 == 0 || e + 1 == gpu.losses.len() {
            println!("epoch {e:>3}: loss {g:.6} (CPU reference {c:.6})");
        }
    }
    std::fs::write(args.out.join("linear_regression.csv"), csv)?;
    support::write_json(&args.out, "linear_regression", &(&gpu, &cpu))?;
    let (_, _, w_true) = data();
    println!(
        "\n{:>6} {:>12} {:>12} {:>12}",
        "weight", "GPU", "CPU", "true"
    );
    for (i, ((g, c), t)) in gpu
        .weights
        .iter()
        .zip(&cpu.weights)
        .zip(&w_true)
        .enumerate()
    {
        println!("{i:>6} {g:>12.6} {c:>12.6} {t:>12.6}");
    }

    Ok(())
}
