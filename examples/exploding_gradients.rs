//! Exploding gradients, tamed. A linear RNN `h_t = w·h_{t−1} + u·x_t` over 40 steps, with
//! `w` starting above 1 (so ∂L/∂w grows like 40·w³⁹; Pascanu et al. 2013), trained with
//! SGD, Adam and RMSprop, each without clipping, clipped by global norm, and clipped by
//! value. Gradients come from backpropagation through time on the host; clipping and the
//! update run through clipstep, whose report gives the gradient norm of every step.
//!
//! Writes `loss_curves.png` and `grad_norms.png` to `--out` (default `out/`).
//!
//!     cargo run --release --example exploding_gradients

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use clipstep::{
    Adam, AdamConfig, Clip, Context, Norm, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
    StepOptions, TensorSpec,
};
use clipstep_tools::support;
use support::{line_chart, Chart, Series};

/// Command-line options.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Where the pictures go.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Training steps per setting.
    #[arg(long, default_value_t = 150)]
    pub steps: usize,
    /// Sequence length (the depth the gradient travels through).
    #[arg(long, default_value_t = 40)]
    pub seq_len: usize,
    /// Global-norm threshold.
    #[arg(long, default_value_t = 1.0)]
    pub max_norm: f32,
    /// Value-clip threshold.
    #[arg(long, default_value_t = 0.1)]
    pub clip_value: f32,
}

/// One training run: its label and colour, and per step the loss and the gradient norm
/// before clipping.
#[derive(serde::Serialize)]
pub struct Run {
    pub label: String,
    #[serde(skip)]
    pub color: plotters::style::RGBColor,
    pub losses: Vec<f64>,
    pub grad_norms: Vec<f64>,
}

/// A batch of sequences and targets made by the "true" RNN (w = 0.9, u = 0.5).
struct Data {
    xs: Vec<Vec<f64>>,
    ys: Vec<f64>,
}

fn data(seq_len: usize) -> Data {
    let noise = support::harness::sample_data(16 * seq_len, 7, 1.0);
    let xs: Vec<Vec<f64>> = noise
        .chunks(seq_len)
        .map(|c| c.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let ys = xs
        .iter()
        .map(|x| x.iter().fold(0.0, |h, &xt| 0.9 * h + 0.5 * xt))
        .collect();
    Data { xs, ys }
}

/// Mean squared error of the last hidden state, and (∂L/∂w, ∂L/∂u) by backpropagation through time.
fn loss_and_grad(w: f64, u: f64, d: &Data) -> (f64, f64, f64) {
    let b = d.xs.len() as f64;
    let (mut loss, mut dw, mut du) = (0.0, 0.0, 0.0);
    for (x, &y) in d.xs.iter().zip(&d.ys) {
        let mut h = vec![0.0; x.len() + 1];
        for t in 0..x.len() {
            h[t + 1] = w * h[t] + u * x[t];
        }
        let err = h[x.len()] - y;
        loss += err * err / b;
        let mut delta = 2.0 * err / b;
        for t in (0..x.len()).rev() {
            dw += delta * h[t];
            du += delta * x[t];
            delta *= w;
        }
    }
    (loss, dw, du)
}

fn optimizer(name: &str, set: &clipstep::ParamSet) -> clipstep::Result<Box<dyn Optimizer>> {
    Ok(match name {
        "SGD" => Box::new(Sgd::new(
            set,
            SgdConfig {
                lr: 0.002,
                momentum: 0.5,
                ..Default::default()
            },
        )?),
        "Adam" => Box::new(Adam::new(
            set,
            AdamConfig {
                lr: 0.05,
                ..Default::default()
            },
        )?),
        _ => Box::new(RmsProp::new(
            set,
            RmsPropConfig {
                lr: 0.02,
                ..Default::default()
            },
        )?),
    })
}

/// Trains every setting; returns the runs in plotting order.
pub fn run(args: &Args) -> Result<Vec<Run>, Box<dyn Error>> {
    let ctx = Context::new()?;
    let d = data(args.seq_len);
    let clips = [
        ("no clipping", Clip::None),
        (
            "clip by norm",
            Clip::GlobalNorm {
                max_norm: args.max_norm,
                norm: Norm::L2,
            },
        ),
        (
            "clip by value",
            Clip::Value {
                clip_value: args.clip_value,
            },
        ),
    ];
    let mut runs = Vec::new();
    for (family, name) in ["SGD", "Adam", "RMSprop"].into_iter().enumerate() {
        for (shade, (clip_name, clip)) in clips.into_iter().enumerate() {
            let mut set = ctx.param_set(&[TensorSpec::new("w", [1]), TensorSpec::new("u", [1])])?;
            set.upload_params(&[1.1, 0.2])?;
            let mut opt = optimizer(name, &set)?;
            // The default non-finite policy skips an overflowing step on the device.
            let options = StepOptions {
                clip,
                ..Default::default()
            };
            let mut run = Run {
                label: format!("{name}, {clip_name}"),
                color: support::shade(family, shade),
                losses: Vec::new(),
                grad_norms: Vec::new(),
            };
            for _ in 0..args.steps {
                let p = set.download_params()?;
                let (loss, dw, du) = loss_and_grad(f64::from(p[0]), f64::from(p[1]), &d);
                set.upload_grads(&[dw as f32, du as f32])?;
                let state = opt.step(&mut set, &options)?.read_blocking()?;
                run.losses.push(loss);
                run.grad_norms.push(f64::from(state.total_norm));
            }
            runs.push(run);
        }
    }
    Ok(runs)
}

/// Draws the two charts into `args.out`.
pub fn plot(args: &Args, runs: &[Run]) -> Result<(), Box<dyn Error>> {
    let dir = support::out_dir(&args.out)?;
    let series = |f: &dyn Fn(&Run) -> &Vec<f64>| -> Vec<Series> {
        runs.iter()
            .map(|r| Series {
                label: r.label.clone(),
                color: r.color,
                points: f(r)
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (i as f64, v))
                    .collect(),
            })
            .collect()
    };
    let title = format!(
        "Linear RNN over {} time steps: loss in {} training steps",
        args.seq_len, args.steps
    );
    let loss_chart = Chart {
        title: &title,
        x_label: "step",
        y_label: "loss (log scale)",
        log_y: true,
        threshold: None,
    };
    line_chart(
        &dir.join("loss_curves.png"),
        &loss_chart,
        &series(&|r| &r.losses),
    )?;
    let threshold = format!("clip threshold (max_norm = {})", args.max_norm);
    let norm_chart = Chart {
        title: "Total gradient norm before clipping",
        x_label: "step",
        y_label: "‖g‖₂ (log scale)",
        log_y: true,
        threshold: Some((f64::from(args.max_norm), &threshold)),
    };
    line_chart(
        &dir.join("grad_norms.png"),
        &norm_chart,
        &series(&|r| &r.grad_norms),
    )?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let runs = run(&args)?;
    println!(
        "{:<28} {:>14} {:>14} {:>16}",
        "setting", "first loss", "final loss", "max grad norm"
    );
    for r in &runs {
        let max_norm = r
            .grad_norms
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        println!(
            "{:<28} {:>14.4e} {:>14.4e} {:>16.4e}",
            r.label,
            r.losses[0],
            r.losses.last().unwrap(),
            max_norm
        );
    }
    plot(&args, &runs)?;
    support::write_json(&args.out, "exploding_gradients", &runs)?;
    println!(
        "wrote {}/loss_curves.png and {}/grad_norms.png",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
