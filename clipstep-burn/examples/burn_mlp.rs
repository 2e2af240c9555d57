//! A burn MLP trained with clipstep's clipped AdamW beside burn's own AdamW (with burn's
//! per-tensor norm clip), same initialisation, same synthetic data, on one shared wgpu
//! device. Writes `burn_loss.png` to `--out` (default `out/`) and prints the optimizer
//! step time of both (device work included: burn's queue is synchronised around each), the
//! whole training step's (forward, backward, step, loss read), and clipstep's own step on
//! a parameter set of the same tensors, for what the adapter adds. `--dtype f16` (or bf16)
//! trains the model in 16 bits: clipstep with f32 master weights, burn's AdamW in place.
//!
//!     cargo run --release -p clipstep-burn --example burn_mlp [-- --dtype f16]

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, Param};
use burn::optim::{AdamWConfig as BurnAdamWConfig, GradientsParams};
use burn::tensor::{DType, Device, Tensor, TensorCreationOptions, TensorData};
use clap::Parser;
use clipstep::{
    AdamW, AdamWConfig, ArenaOptions, Clip, Context, Dtype, Norm, Optimizer, ParamSet, StepOptions,
    TensorSpec,
};
use clipstep_burn::{shared_device, BurnOptimizer};

use clipstep_tools::harness::sample_data;
use clipstep_tools::support;

/// A tensor of `dtype` and `shape` on `device` holding deterministic values in
/// `[-scale, scale)`.
fn tensor<const D: usize>(
    device: &Device, dtype: DType, shape: [usize; D], seed: u64, scale: f32,
) -> Tensor<D> {
    let n = shape.iter().product();
    let options = TensorCreationOptions::new(device.clone()).with_dtype(dtype);
    Tensor::from_data(TensorData::new(sample_data(n, seed, scale), shape), options)
}

/// Command-line options.
#[derive(Parser, Debug)]
struct Args {
    /// Where the loss curve goes.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Steps at the start of each run that are not timed: the first steps compile and
    /// autotune burn's kernels, once per process, so untimed they would be charged to
    /// whichever run goes first (clipstep's).
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Hidden units per layer.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Global L2 norm bound (clipstep) / per-tensor norm bound (burn).
    #[arg(long, default_value_t = 1.0)]
    max_norm: f32,
    /// The model's element type: f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "bf16"])]
    dtype: String,
}

impl Args {
    /// The model's element type, in clipstep's terms and burn's.
    fn dtype(&self) -> (Dtype, DType) {
        match self.dtype.as_str() {
            "f16" => (Dtype::F16, DType::F16),
            "bf16" => (Dtype::Bf16, DType::BF16),
            _ => (Dtype::F32, DType::F32),
        }
    }
}

/// Three layers with tanh: `d → h → h → 1`.
#[derive(Module, Debug)]
struct Mlp {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
    w3: Param<Tensor<2>>,
    b3: Param<Tensor<1>>,
}

impl Mlp {
    fn new(device: &Device, dtype: DType, d: usize, h: usize) -> Mlp {
        let (sd, sh) = (1.0 / (d as f32).sqrt(), 1.0 / (h as f32).sqrt());
        Mlp {
            w1: Param::from_tensor(tensor(device, dtype, [d, h], 1, sd)),
            b1: Param::from_tensor(tensor(device, dtype, [h], 2, sd)),
            w2: Param::from_tensor(tensor(device, dtype, [h, h], 3, sh)),
            b2: Param::from_tensor(tensor(device, dtype, [h], 4, sh)),
            w3: Param::from_tensor(tensor(device, dtype, [h, 1], 5, sh)),
            b3: Param::from_tensor(tensor(device, dtype, [1], 6, sh)),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = (x.matmul(self.w1.val()) + self.b1.val().unsqueeze()).tanh();
        let h = (h.matmul(self.w2.val()) + self.b2.val().unsqueeze()).tanh();
        h.matmul(self.w3.val()) + self.b3.val().unsqueeze()
    }
}

/// The loss and gradients of the mean squared error.
fn loss_and_grads(model: &Mlp, x: &Tensor<2>, y: &Tensor<2>) -> (Tensor<1>, GradientsParams) {
    let loss = (model.forward(x.clone()) - y.clone()).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), model);
    (loss, grads)
}

/// Trains a fresh model for `args.steps` full-batch steps with `step`, timing each step
/// after the first `args.warmup` between two device synchronisations (burn's and
/// clipstep's work share one queue).
fn train(
    device: &Device, args: &Args, x: &Tensor<2>, y: &Tensor<2>,
    mut step: impl FnMut(Mlp, GradientsParams) -> Result<Mlp, Box<dyn Error>>,
) -> Result<Run, Box<dyn Error>> {
    let mut model = Mlp::new(device, args.dtype().1, x.dims()[1], args.hidden);
    let mut run = Run {
        losses: Vec::new(),
        step_time: Duration::ZERO,
        host_time: Duration::ZERO,
        total_time: Duration::ZERO,
    };
    let mut begin = Instant::now();
    for i in 0..args.steps {
        if i == args.warmup {
            (run.step_time, run.host_time) = (Duration::ZERO, Duration::ZERO);
            begin = Instant::now();
        }
        let (loss, grads) = loss_and_grads(&model, x, y);
        run.losses
            .push(loss.into_data().convert::<f32>().try_to_vec::<f32>()?[0]);
        device.sync()?;
        let start = Instant::now();
        model = step(model, grads)?;
        run.host_time += start.elapsed();
        device.sync()?;
        run.step_time += start.elapsed();
    }
    run.total_time = begin.elapsed();
    Ok(run)
}

/// clipstep's own step on a set of `shapes` (its own slabs), `steps` times, each between
/// two waits for the queue: the time per step after the first `warmup` (as the adapter's
/// run is timed), the adapter's floor.
fn native_step_time(
    ctx: &Context, shapes: &[Vec<usize>], dtype: Dtype, options: &StepOptions, config: AdamWConfig,
    steps: usize, warmup: usize,
) -> Result<Duration, Box<dyn Error>> {
    let specs: Vec<TensorSpec> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| TensorSpec::new(format!("t{i}"), s.clone()).with_dtype(dtype))
        .collect();
    let mut set = ParamSet::new(ctx, &specs, ArenaOptions::mixed(dtype))?;
    let n = set.numel() as usize;
    set.upload_params(&sample_data(n, 1, 0.1))?;
    set.upload_grads(&sample_data(n, 2, 0.1))?;
    let mut opt = AdamW::new(&set, config)?;
    let (device, _) = ctx.device_queue().ok_or("no GPU device")?;
    let mut total = Duration::ZERO;
    for i in 0..steps {
        if i == warmup {
            total = Duration::ZERO;
        }
        device.poll(wgpu::PollType::wait_indefinitely())?;
        let start = Instant::now();
        opt.step(&mut set, options)?;
        device.poll(wgpu::PollType::wait_indefinitely())?;
        total += start.elapsed();
    }
    Ok(total / (steps - warmup) as u32)
}

/// One run's losses and the time of its optimizer steps: on the host (the call), and with
/// the device work (until the queue is idle).
struct Run {
    losses: Vec<f32>,
    step_time: Duration,
    host_time: Duration,
    /// The whole loop after the warm-up: forward, backward, loss read, step.
    total_time: Duration,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if args.steps <= args.warmup {
        return Err(format!(
            "--steps {} leaves no timed step after --warmup {}: ask for more steps",
            args.steps, args.warmup
        )
        .into());
    }
    let timed = (args.steps - args.warmup) as f64;
    std::fs::create_dir_all(&args.out)?;
    let (ctx, device) = shared_device()?;
    println!("burn and clipstep on {}", ctx.describe());
    let (n, d) = (512, 16);
    let x = tensor(&device, args.dtype().1, [n, d], 11, 1.0);
    // A smooth target with one steep direction, so early gradients are large.
    let y = (x.clone().sum_dim(1) * 0.5).sin() + x.clone().slice([0..n, 0..1]) * 4.0;
    let lr = 3e-3;

    // clipstep: global-norm clip + fused AdamW.
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: args.max_norm,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    let config = AdamWConfig {
        lr,
        ..Default::default()
    };
    let mut ours = BurnOptimizer::adamw(&ctx, config).with_options(options);
    let mut in_place = 0;
    let clipstep_run = train(&device, &args, &x, &y, |model, grads| {
        let model = ours.step(lr, model, grads)?;
        in_place += usize::from(ours.gradients_in_place());
        Ok(model)
    })?;

    // burn: its AdamW with its per-tensor norm clip (burn has no global-norm clip).
    let mut theirs = BurnAdamWConfig::new()
        .with_weight_decay(1e-2)
        .with_epsilon(1e-8)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(args.max_norm)))
        .init();
    let burn_run = train(&device, &args, &x, &y, |model, grads| {
        Ok(theirs.step(lr, model, grads))
    })?;

    let per_step = |r: &Run| r.step_time.as_secs_f64() * 1e3 / timed;
    let host = |r: &Run| r.host_time.as_secs_f64() * 1e3 / timed;
    let params = d * args.hidden + 2 * args.hidden + args.hidden * args.hidden + args.hidden + 1;
    println!(
        "{params} {} parameters in 6 tensors, {} steps (the first {} untimed)",
        args.dtype, args.steps, args.warmup
    );
    println!(
        "final loss: clipstep (global-norm clip) {:.5}, burn (per-tensor clip) {:.5}",
        clipstep_run.losses.last().unwrap_or(&f32::NAN),
        burn_run.losses.last().unwrap_or(&f32::NAN)
    );
    println!(
        "optimizer step, device work included: clipstep {:.3} ms, burn {:.3} ms ({:.2}x)",
        per_step(&clipstep_run),
        per_step(&burn_run),
        per_step(&burn_run) / per_step(&clipstep_run)
    );
    println!(
        "optimizer step, host time of the call: clipstep {:.3} ms, burn {:.3} ms",
        host(&clipstep_run),
        host(&burn_run)
    );
    let total = |r: &Run| r.total_time.as_secs_f64() * 1e3 / timed;
    println!(
        "whole training step (forward, backward, loss read, step): clipstep {:.3} ms, burn {:.3} ms",
        total(&clipstep_run),
        total(&burn_run)
    );
    let shapes = vec![
        vec![d, args.hidden],
        vec![args.hidden],
        vec![args.hidden, args.hidden],
        vec![args.hidden],
        vec![args.hidden, 1],
        vec![1],
    ];
    let native = native_step_time(
        &ctx,
        &shapes,
        args.dtype().0,
        &options,
        config,
        args.steps,
        args.warmup,
    )?;
    println!(
        "clipstep's own step on the same tensors: {:.3} ms (the adapter's step is {:.2}x that)",
        native.as_secs_f64() * 1e3,
        per_step(&clipstep_run) / (native.as_secs_f64() * 1e3)
    );
    println!(
        "clipstep read burn's gradients in place in {in_place} of {} steps (else copied on the device); parameters in {} of burn's buffers; {} clipstep set build(s); {} parameters copied at the last step (shared handles)",
        args.steps,
        ours.parameter_buffers(),
        ours.builds(),
        ours.parameters_copied()
    );
    let path = args.out.join("burn_loss.png");
    plot(&path, &clipstep_run.losses, &burn_run.losses)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn plot(path: &std::path::Path, ours: &[f32], theirs: &[f32]) -> Result<(), Box<dyn Error>> {
    let points = |losses: &[f32]| -> Vec<(f64, f64)> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as f64, f64::from(l)))
            .collect()
    };
    let chart = support::Chart {
        title: "burn MLP: training loss",
        x_label: "step",
        y_label: "MSE loss",
        log_y: true,
        threshold: None,
    };
    let series = [
        support::Series {
            label: "clipstep AdamW, global-norm clip".into(),
            color: support::shade(1, 0),
            points: points(ours),
        },
        support::Series {
            label: "burn AdamW, per-tensor norm clip".into(),
            color: support::shade(0, 1),
            points: points(theirs),
        },
    ];
    support::line_chart(path, &chart, &series)
}
