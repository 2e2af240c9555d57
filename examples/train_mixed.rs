//! Mixed-precision training on the GPU: the two-layer MLP of `train_on_gpu`
//! (`clipstep_tools::mlp`) with its
//! parameters and gradients in bf16 (or f16), f32 master weights and moments, and the
//! dynamic loss scale kept on the device. The forward pass reads the 16-bit parameters
//! clipstep writes; the backward pass computes f32 gradients of the *scaled* loss (it
//! reads the current scale from the optimizer's device state, `loss_scale_binding`) and
//! writes them into clipstep's 16-bit gradient buffer; the clipped AdamW step unscales,
//! skips an overflowing step, and grows or backs off the scale, all in one command encoder
//! per step. The host reads the loss (and the scale) only every `--log-every` steps.
//!
//! Writes `train_mixed_loss.png` (the 16-bit runs' loss beside the f32 run's) and
//! `train_mixed_scale.png` (the loss scale) to `--out` (default `out/`).
//!
//!     cargo run --release --example train_mixed

use std::error::Error;

use clap::Parser;
use clipstep::{AdamW, ArenaOptions, Context, Dtype, LossScaler, Optimizer, ParamSet, StepOptions};
use clipstep_tools::mlp::{self, N, PARAMS};
use clipstep_tools::{gpu, support};

/// Command-line options: `train_on_gpu`'s, and the scaler's growth interval.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub run: mlp::TrainArgs,
    /// The loss scaler's growth interval (PyTorch's default is 2000; short here so the
    /// scale visibly grows and, in f16, overflows and backs off).
    #[arg(long, default_value_t = 25)]
    pub growth_interval: u32,
}

/// The head of the 16-bit model's shader (`train_on_gpu`'s passes follow it): `param(k)`
/// widens the 16-bit parameters, the backward pass writes f32 gradients into a scratch
/// buffer (`grads`), and `pack` scales, rounds (to nearest even) and packs them into
/// clipstep's 16-bit buffer (`grads16`), one invocation per word (two elements: no two
/// invocations write one word).
const HEAD: &str = r#"
struct Dims { n: u32, d: u32, h: u32, w1: u32, b1: u32, w2: u32, b2: u32, words: u32, scale_at: u32, f16: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(8) var<storage, read_write> grads16: array<u32>;
@group(0) @binding(9) var<storage, read> step_state: array<f32>;

// Element k of the 16-bit parameter slab, widened (exact).
fn param(k: u32) -> f32 {
    let w = params[k / 2u];
    let h = select(w & 0xffffu, w >> 16u, k % 2u == 1u);
    if dims.f16 != 0u {
        return unpack2x16float(h).x;
    }
    return bitcast<f32>(h << 16u);
}

// f32 → 16 bits, round to nearest even (finite inputs; an overflow becomes ±Inf).
fn round16(x: f32) -> u32 {
    if dims.f16 != 0u {
        let a = abs(x);
        if a >= 65520.0 {
            return select(0x7c00u, 0xfc00u, x < 0.0);
        }
        return pack2x16float(vec2<f32>(x, 0.0)) & 0xffffu;
    }
    let b = bitcast<u32>(x);
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}


// The gradients of the scaled loss, scale · ∂L/∂θ, rounded into two 16-bit halves of a
// word (the padding between tensors is 0 in the f32 gradients, and stays 0).
@compute @workgroup_size(64)
fn pack(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = id.x;
    if w >= dims.words { return; }
    let scale = step_state[dims.scale_at];
    let lo = round16(grads[2u * w] * scale);
    let hi = round16(grads[2u * w + 1u] * scale);
    grads16[w] = lo | (hi << 16u);
}
"#;

/// (step, loss, loss scale) of one run's logged steps.
pub type Curve = Vec<(usize, f32, f32)>;

/// One 16-bit run: its logged steps, and how many steps the scaler skipped (overflow).
#[derive(serde::Serialize)]
pub struct Run {
    pub curve: Curve,
    pub skipped: usize,
}

/// The 16-bit run: `dtype` parameters and gradients, f32 master weights, a dynamic scale.
pub fn train(ctx: &Context, dtype: Dtype, args: &Args) -> Result<Run, Box<dyn Error>> {
    let (device, queue) = ctx
        .device_queue()
        .ok_or("this example needs a GPU adapter")?;
    let (x, t, init) = mlp::data();
    let mut set = ParamSet::new(ctx, &mlp::specs(), ArenaOptions::mixed(dtype))?;
    set.upload_params(&init)?;
    let mut opt = AdamW::new(&set, mlp::config())?;
    opt.loss_scaling().set_scaler(Some(LossScaler {
        growth_interval: args.growth_interval,
        ..Default::default()
    }))?;
    let options: StepOptions = mlp::options();

    let params_buf = set.param_views("w1")?[0].buffer.clone();
    let grads_buf = set.grad_views("w1")?[0].buffer.clone();
    let (state_buf, scale_offset) = opt.loss_scaling().binding().ok_or("a GPU optimizer")?;
    let state_buf = state_buf.clone();
    let words = (grads_buf.size() / 4) as u32;
    let tail = [
        words,
        (scale_offset / 4) as u32,
        u32::from(dtype == Dtype::F16),
        0,
        0,
    ];
    let dims = [mlp::dims_head(&set, 2)?.as_slice(), &tail].concat();
    let mlp = mlp::MlpBuffers::new(device, &x, &t, &dims);
    let scratch = gpu::storage(device, "f32 gradients", &vec![0.0; 2 * words as usize]);
    let shader = format!("{HEAD}{}", mlp::PASSES);
    let pipelines = gpu::pipelines(device, &shader, &["forward", "backward", "pack"]);
    let forward = mlp.forward(device, &pipelines[0], &params_buf);
    let backward = mlp.backward(device, &pipelines[1], &params_buf, &scratch);
    let pack = gpu::bind_group(
        device,
        &pipelines[2],
        &[
            (5, &mlp.dims),
            (6, &scratch),
            (8, &grads_buf),
            (9, &state_buf),
        ],
    );
    let dispatches = [
        (&pipelines[0], &forward, N.div_ceil(64) as u32),
        (&pipelines[1], &backward, PARAMS.div_ceil(64) as u32),
        (&pipelines[2], &pack, words.div_ceil(64)),
    ];
    let mut curve = Vec::new();
    gpu::train(
        device,
        queue,
        &dispatches,
        &mlp.loss,
        args.run.steps,
        args.run.log_every,
        |encoder| Ok(opt.encode_step(encoder, &mut set, &options)?),
        |step, value, report| {
            curve.push((step, value, report.read_blocking()?.loss_scale));
            Ok(())
        },
    )?;
    let skipped = args.run.steps - opt.states().step_count()? as usize;
    Ok(Run { curve, skipped })
}

/// The f32 run of `train_on_gpu`, bf16 and f16 runs: (f32, bf16, f16).
pub fn run(args: &Args) -> Result<(Curve, Run, Run), Box<dyn Error>> {
    let ctx = Context::new()?;
    let f32_curve = mlp::train_gpu(&ctx, args.run.steps, args.run.log_every)?
        .into_iter()
        .map(|(s, l)| (s, l, 1.0))
        .collect();
    Ok((
        f32_curve,
        train(&ctx, Dtype::Bf16, args)?,
        train(&ctx, Dtype::F16, args)?,
    ))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    println!("adapter: {}", Context::new()?.describe());
    let (f32_curve, bf16_run, f16_run) = run(&args)?;
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "step", "loss f32", "loss bf16", "scale bf16", "loss f16", "scale f16"
    );
    let (bf16, f16) = (&bf16_run.curve, &f16_run.curve);
    for ((&(s, a, _), &(_, b, sb)), &(_, c, sc)) in f32_curve.iter().zip(bf16).zip(f16) {
        println!("{s:>6} {a:>12.6} {b:>12.6} {sb:>12.0} {c:>12.6} {sc:>12.0}");
    }
    println!(
        "steps skipped on overflow: bf16 {}, f16 {}",
        bf16_run.skipped, f16_run.skipped
    );
    let series =
        |label: &str, curve: &Curve, pick: fn(&(usize, f32, f32)) -> f32, color| support::Series {
            label: label.into(),
            color,
            points: curve
                .iter()
                .map(|p| (p.0 as f64, f64::from(pick(p))))
                .collect(),
        };
    let loss = |p: &(usize, f32, f32)| p.1;
    let scale = |p: &(usize, f32, f32)| p.2;
    let dir = support::out_dir(&args.run.out)?;
    let runs = (&f32_curve, &bf16_run, &f16_run);
    support::write_json(&dir, "train_mixed", &runs)?;
    let chart = support::Chart {
        title: "Two-layer MLP: 16-bit parameters and gradients, f32 master weights",
        x_label: "step",
        y_label: "MSE loss (log scale)",
        log_y: true,
        threshold: None,
    };
    let path = dir.join("train_mixed_loss.png");
    support::line_chart(
        &path,
        &chart,
        &[
            series("f32", &f32_curve, loss, support::shade(0, 2)),
            series(
                "bf16 + f32 master, dynamic scale",
                bf16,
                loss,
                support::shade(1, 0),
            ),
            series(
                "f16 + f32 master, dynamic scale",
                f16,
                loss,
                support::shade(2, 1),
            ),
        ],
    )?;
    println!("wrote {}", path.display());
    let chart = support::Chart {
        title: "Dynamic loss scale, kept on the device",
        x_label: "step",
        y_label: "loss scale (log scale)",
        log_y: true,
        threshold: None,
    };
    let path = dir.join("train_mixed_scale.png");
    support::line_chart(
        &path,
        &chart,
        &[
            series("bf16", bf16, scale, support::shade(1, 0)),
            series("f16", f16, scale, support::shade(2, 1)),
        ],
    )?;
    println!("wrote {}", path.display());
    Ok(())
}
