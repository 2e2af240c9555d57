//! burn's `Learner` stepping with clipstep: the recipe of README's "With burn" section.
//!
//! `cargo run --release -p clipstep-burn --example burn_learner [-- --epochs N]`
//!
//! A small regression model trains twice in burn's `SupervisedTraining`, from the same
//! weights on the same batches: once with burn's AdamW (`ModuleOptimizer`), once with
//! clipstep's AdamW built from the same burn config ([`BurnOptimizer::from_burn`]). The
//! model carries a [`SharedOptimizer`] (`#[module(skip)]`) and its `TrainStep::optimize`
//! steps with it; everything else is burn's. The run prints both final losses, the largest
//! parameter difference, and how the clipstep set followed the Learner's clones (one build,
//! rebinds after).

use std::error::Error;
use std::time::{Duration, Instant};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::lr_scheduler::constant::ConstantLr;
use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::LossMetric;
use burn::train::renderer::CliMetricsRenderer;
use burn::train::{
    InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep,
};
use clap::Parser;
use clipstep_burn::{shared_device, BurnOptimizer, SharedOptimizer};
use clipstep_tools::harness::sample_data;

/// Inputs per example and hidden width of the model.
pub const INPUTS: usize = 8;
pub const HIDDEN: usize = 32;
/// Examples in the training set, and per batch (the last batch is a partial one).
pub const EXAMPLES: usize = 200;
pub const BATCH: usize = 32;
/// burn's learning rate (a constant schedule).
pub const LR: f64 = 1e-2;

/// A two-layer perceptron `tanh(x·w1 + b1)·w2 + b2`, and, skipped by burn's module
/// machinery (not a parameter, not in records, shared by every clone), the clipstep
/// optimizer that steps it (`None`: burn's optimizer does).
#[derive(Module, Debug)]
pub struct Regressor {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
    #[module(skip)]
    clipstep: Option<SharedOptimizer>,
}

impl Regressor {
    /// Fixed weights (the same bits for both runs).
    pub fn new(device: &Device, clipstep: Option<SharedOptimizer>) -> Self {
        let s1 = 1.0 / (INPUTS as f32).sqrt();
        let s2 = 1.0 / (HIDDEN as f32).sqrt();
        Self {
            w1: Param::from_tensor(fixed(device, [INPUTS, HIDDEN], 1, s1)),
            b1: Param::from_tensor(fixed(device, [HIDDEN], 2, s1)),
            w2: Param::from_tensor(fixed(device, [HIDDEN, 1], 3, s2)),
            b2: Param::from_tensor(fixed(device, [1], 4, s2)),
            clipstep,
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = (x.matmul(self.w1.val()) + self.b1.val().unsqueeze()).tanh();
        h.matmul(self.w2.val()) + self.b2.val().unsqueeze()
    }

    fn regression(&self, batch: Batch) -> RegressionOutput {
        let output = self.forward(batch.x);
        let loss = (output.clone() - batch.y.clone()).powi_scalar(2).mean();
        RegressionOutput::new(loss, output, batch.y)
    }

    /// Every parameter's values on the host, in declaration order.
    pub fn values(&self) -> Vec<Vec<f32>> {
        let host = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        vec![
            host(self.w1.val().flatten(0, 1)),
            host(self.b1.val()),
            host(self.w2.val().flatten(0, 1)),
            host(self.b2.val()),
        ]
    }

    /// The same model stepped by `clipstep` (`None`: by the Learner's optimizer).
    pub fn with_clipstep(mut self, clipstep: Option<SharedOptimizer>) -> Self {
        self.clipstep = clipstep;
        self
    }

    /// The mean squared error over the whole training set.
    pub fn loss(&self) -> f32 {
        let batch = Batcher::batch(&Rows, dataset(), &self.devices()[0]);
        let out = self.regression(batch);
        out.loss.into_data().try_to_vec::<f32>().unwrap()[0]
    }
}

/// The hook: burn's `Learner` calls this after each backward pass, on a clone of the model.
impl TrainStep for Regressor {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> TrainOutput<RegressionOutput> {
        let out = self.regression(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }

    fn optimize(
        self, optim: &mut ModuleOptimizer, lr: ModuleLearningRate, grads: GradientsParams,
    ) -> Self {
        match self.clipstep.clone() {
            Some(clipstep) => clipstep.optimize(lr, self, grads),
            None => optim.step(lr, self, grads),
        }
    }
}

impl InferenceStep for Regressor {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> RegressionOutput {
        self.regression(batch)
    }
}

/// One example: `y = sin(Σx / 2) + x₀`.
#[derive(Clone, Debug)]
pub struct Row {
    x: Vec<f32>,
    y: f32,
}

/// A batch of rows as tensors.
#[derive(Clone, Debug)]
pub struct Batch {
    x: Tensor<2>,
    y: Tensor<2>,
}

/// Stacks rows into a [`Batch`].
struct Rows;

impl Batcher<Row, Batch> for Rows {
    fn batch(&self, rows: Vec<Row>, device: &Device) -> Batch {
        let n = rows.len();
        let x: Vec<f32> = rows.iter().flat_map(|r| r.x.iter().copied()).collect();
        let y: Vec<f32> = rows.iter().map(|r| r.y).collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, INPUTS]), device),
            y: Tensor::from_data(TensorData::new(y, [n, 1]), device),
        }
    }
}

/// The training set (fixed values).
pub fn dataset() -> Vec<Row> {
    let x = sample_data(EXAMPLES * INPUTS, 11, 1.0);
    x.chunks(INPUTS)
        .map(|x| Row {
            x: x.to_vec(),
            y: (x.iter().sum::<f32>() * 0.5).sin() + x[0],
        })
        .collect()
}

/// A tensor of `shape` on `device` holding deterministic values in `[-scale, scale)`.
fn fixed<const D: usize>(device: &Device, shape: [usize; D], seed: u64, scale: f32) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(sample_data(n, seed, scale), shape), device)
}

/// The batches, in order (no shuffle), both for training and validation.
fn loader() -> std::sync::Arc<dyn DataLoader<Batch>> {
    DataLoaderBuilder::new(Rows)
        .batch_size(BATCH)
        .build(InMemDataset::new(dataset()))
}

/// burn's optimizer config for both runs: its AdamW with its defaults (eps 1e-5, weight
/// decay 1e-4).
pub fn adamw() -> AdamWConfig {
    AdamWConfig::new()
}

/// Trains `model` for `epochs` in burn's `SupervisedTraining` (no checkpoints, metrics kept in
/// memory).
pub fn train(model: Regressor, epochs: usize) -> Trained {
    let dir = std::env::temp_dir().join(format!("clipstep-burn-learner-{}", std::process::id()));
    let training = SupervisedTraining::new(&dir, loader(), loader())
        .num_epochs(epochs)
        .with_metric_logger(InMemoryMetricLogger::new())
        .metric_train_numeric(LossMetric::new())
        .renderer(Box::new(CliMetricsRenderer::new()))
        .with_application_logger(None);
    // Stop the Learner at a failed clipstep step (the step itself changed nothing).
    if let Some(clipstep) = &model.clipstep {
        let interrupter = training.interrupter();
        clipstep.on_error(move |e| interrupter.stop(Some(&e.to_string())));
    }
    // burn's AdamW is the Learner's `ModuleOptimizer`; with clipstep it is never stepped.
    let learner = Learner::new(model, adamw().init(), ConstantLr::new(LR));
    let start = Instant::now();
    let result = training.launch(learner);
    let time = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    Trained {
        model: result.model,
        time,
        stopped: result.interrupted.map(|i| i.reason.unwrap_or_default()),
    }
}

/// What [`train`] gives back.
pub struct Trained {
    /// The trained model (in validation mode, as burn's Learner returns it: `.train()` to
    /// go on training).
    pub model: Regressor,
    /// The wall time of the whole training.
    pub time: Duration,
    /// Why the Learner stopped early (a failed clipstep step's message), if it did.
    pub stopped: Option<String>,
}

#[derive(Parser)]
struct Args {
    /// Epochs (7 batches each).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
}

#[allow(dead_code)] // the test includes this file for its recipe, not its main
fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let (ctx, device) = shared_device()?;
    println!("burn's Learner on {}", ctx.describe());

    // One epoch first, untimed: compiles burn's kernels (forward, backward, its AdamW), which
    // would otherwise land in the first timed run only.
    train(Regressor::new(&device, None), 1);
    let theirs = train(Regressor::new(&device, None), args.epochs);
    let clipstep = SharedOptimizer::new(BurnOptimizer::from_burn(&ctx, &adamw())?);
    let ours = train(Regressor::new(&device, Some(clipstep.clone())), args.epochs);
    if let Some(error) = clipstep.take_error() {
        return Err(format!("a clipstep step failed: {error}").into());
    }

    let batches = EXAMPLES.div_ceil(BATCH);
    let steps = args.epochs * batches;
    let largest = ours
        .model
        .values()
        .iter()
        .zip(theirs.model.values())
        .flat_map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0f32, f32::max);
    println!("{steps} steps: {} epochs of {batches} batches", args.epochs);
    println!(
        "final loss: clipstep {:.6}, burn {:.6}; largest parameter difference {largest:.2e}",
        ours.model.loss(),
        theirs.model.loss(),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "training time, the Learner's own work included: clipstep {:.1} ms, burn {:.1} ms ({:.2} and {:.2} ms per step)",
        ms(ours.time),
        ms(theirs.time),
        ms(ours.time) / steps as f64,
        ms(theirs.time) / steps as f64,
    );
    clipstep.with(|o| {
        println!(
            "clipstep set builds: {} (rebinds after the first step); parameters copied at the last step (the Learner's clone holds them): {}; gradients in place: {}",
            o.builds(),
            o.parameters_copied(),
            o.gradients_in_place()
        )
    });
    Ok(())
}
