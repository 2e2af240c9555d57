//! Training entirely on the GPU: a two-layer MLP (4 → 16 tanh → 1) regressing a smooth
//! function of its inputs. Forward and backward passes are the model's own WGSL kernels
//! (`clipstep_tools::mlp`, which `train_mixed` trains too); the backward kernel writes gradients straight into clipstep's gradient arena
//! (`ParamSet::grad_views`), and each training step — forward, backward, clipped AdamW —
//! is recorded into one command encoder. The loss is read back only every `--log-every`
//! steps. The same loop on the CPU reference shows the GPU run agrees.
//!
//! Writes `train_loss.png` to `--out` (default `out/`).
//!
//!     cargo run --release --example train_on_gpu

use std::error::Error;

use clap::Parser;
use clipstep::{AdamW, Context, Optimizer};
use clipstep_tools::mlp::{self, config, data, options, specs, Curve, TrainArgs, D, H, N, PARAMS};
use clipstep_tools::support;

/// Command-line options.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub run: TrainArgs,
}

/// The same model and loop on the CPU reference, with the forward and backward passes
/// written in Rust in the shader's order of operations.
pub fn train_cpu(args: &Args) -> clipstep::Result<Curve> {
    let (x, t, init) = data();
    let ctx = Context::cpu();
    let mut set = ctx.param_set(&specs())?;
    set.upload_params(&init)?;
    let mut opt = AdamW::new(&set, config())?;
    let mut curve = Vec::new();
    for step in 0..args.run.steps {
        let p = set.download_params()?;
        let (w1, b1, w2, b2) = (
            &p[..H * D],
            &p[H * D..H * D + H],
            &p[H * D + H..H * D + 2 * H],
            p[PARAMS - 1],
        );
        let mut hidden = vec![0.0f32; N * H];
        let mut resid = vec![0.0f32; N];
        for n in 0..N {
            let mut y = b2;
            for j in 0..H {
                let mut a = b1[j];
                for i in 0..D {
                    a += w1[j * D + i] * x[n * D + i];
                }
                hidden[n * H + j] = a.tanh();
                y += w2[j] * hidden[n * H + j];
            }
            resid[n] = y - t[n];
        }
        let mut g = vec![0.0f32; PARAMS];
        for j in 0..H {
            for i in 0..D {
                let mut s = 0.0;
                for n in 0..N {
                    let hj = hidden[n * H + j];
                    s += resid[n] * w2[j] * (1.0 - hj * hj) * x[n * D + i];
                }
                g[j * D + i] = 2.0 * s / N as f32;
            }
            let (mut sb, mut sw) = (0.0, 0.0);
            for n in 0..N {
                let hj = hidden[n * H + j];
                sb += resid[n] * w2[j] * (1.0 - hj * hj);
                sw += resid[n] * hj;
            }
            g[H * D + j] = 2.0 * sb / N as f32;
            g[H * D + H + j] = 2.0 * sw / N as f32;
        }
        let (sr, loss) = resid
            .iter()
            .fold((0.0, 0.0), |(s, l), r| (s + r, l + r * r));
        g[PARAMS - 1] = 2.0 * sr / N as f32;
        set.upload_grads(&g)?;
        opt.step(&mut set, &options())?;
        if step % args.run.log_every == 0 || step + 1 == args.run.steps {
            curve.push((step, loss / N as f32));
        }
    }
    Ok(curve)
}

/// Both runs: (GPU, CPU reference).
pub fn run(args: &Args) -> Result<(Curve, Curve), Box<dyn Error>> {
    let gpu = mlp::train_gpu(&Context::new()?, args.run.steps, args.run.log_every)?;
    Ok((gpu, train_cpu(args)?))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    println!("adapter: {}", Context::new()?.describe());
    let (gpu, cpu) = run(&args)?;
    println!(
        "{:>6} {:>12} {:>14}",
        "step", "loss (GPU)", "loss (CPU ref)"
    );
    let mut worst = 0.0f32;
    for (&(s, g), &(_, c)) in gpu.iter().zip(&cpu) {
        println!("{s:>6} {g:>12.6} {c:>14.6}");
        worst = worst.max((g - c).abs() / c.abs().max(1e-6));
    }
    println!("largest relative difference between the two loss curves: {worst:.2e}");
    let series = |label: &str, curve: &Curve, color| support::Series {
        label: label.into(),
        color,
        points: curve
            .iter()
            .map(|&(s, l)| (s as f64, f64::from(l)))
            .collect(),
    };
    let chart = support::Chart {
        title: "Two-layer MLP trained on the GPU (clipped AdamW)",
        x_label: "step",
        y_label: "MSE loss (log scale)",
        log_y: true,
        threshold: None,
    };
    support::write_json(&args.run.out, "train_on_gpu", &(&gpu, &cpu))?;
    let path = support::out_dir(&args.run.out)?.join("train_loss.png");
    support::line_chart(
        &path,
        &chart,
        &[
            series("GPU (one encoder per step)", &gpu, support::shade(1, 0)),
            series("CPU reference", &cpu, support::shade(0, 2)),
        ],
    )?;
    println!("wrote {}", path.display());
    Ok(())
}
