//! Clipped AdamW on a model spread over MPI ranks, each rank with its own clipstep
//! Context. Needs the `mpi` feature and an MPI library (Open MPI: `apt-get install
//! libopenmpi-dev openmpi-bin libclang-dev`):
//!
//!     cargo build --release --features mpi --example sharded_mpi
//!     mpirun -n 4 target/release/examples/sharded_mpi --check
//!
//! The model: 12 layers (a weight and a bias each) and one `norm.scale` replicated on every
//! rank, with a quadratic loss per tensor, `L_t = ½ Σ_i a_i (w_i − c_i)²`, whose gradient
//! (plus noise standing in for minibatch noise) the host computes each step; a stand-in for
//! a backward pass that keeps the example about the distribution.
//!
//! `--mode shard` (default, ZeRO/FSDP-like): tensor `i` lives on rank `i mod N`; each step
//! is phase 1 (`norm_partial`, one readback), one all-gather of 104 bytes per rank,
//! phase 2 (the fused step with the combined `total_norm`). `--mode data`: every rank holds
//! every tensor and its own data's gradients; the gradients are averaged (in rank order,
//! the same bits everywhere) and every rank runs the same one-pass step.
//!
//! `--check`: every step, every rank must have used the same total norm and made the same
//! skip decision; at the end rank 0 runs the whole model in one process and requires the
//! ranks' parameters to equal it bit for bit (the two-phase path over one rank in shard
//! mode; the same step on the averaged gradients in data mode), and reports how far the
//! one-pass fused step is. `--nan-at S` puts a NaN in the last rank's gradients at step S:
//! every rank must skip that step. Exits non-zero on any mismatch.

use std::error::Error;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use clipstep::mpi::{all_gather_total_norm, average_grads};
use clipstep::{
    AdamW, AdamWConfig, Clip, Context, Nonfinite, Norm, Optimizer, ParamGroup, ParamSet,
    StepOptions, TensorSpec,
};
use mpi::traits::{Communicator, CommunicatorCollectives, Destination, Source};

/// How the model is spread over the ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Each tensor on one rank (the replicated one on all); the norm is combined.
    Shard,
    /// Every tensor on every rank; gradients averaged, the norm computed once per rank.
    Data,
}

/// Command-line options.
#[derive(Parser, Debug)]
struct Args {
    /// Training steps.
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// How tensors are spread over ranks.
    #[arg(long, value_enum, default_value_t = Mode::Shard)]
    mode: Mode,
    /// Largest global L2 norm of the gradient.
    #[arg(long, default_value_t = 1.0)]
    max_norm: f32,
    /// Check every rank against the others and against one process (exit 1 on mismatch).
    #[arg(long)]
    check: bool,
    /// Put a NaN in the last rank's gradients at this step.
    #[arg(long)]
    nan_at: Option<u64>,
    /// Print the loss every this many steps (rank 0).
    #[arg(long, default_value_t = 50)]
    log_every: u64,
}

const LAYERS: usize = 12;
const REPLICATED: &str = "norm.scale";

/// The model's tensors: (name, length). Awkward lengths (primes, not multiples of 64).
fn model() -> Vec<(String, usize)> {
    let mut tensors = Vec::new();
    for l in 0..LAYERS {
        tensors.push((format!("layer{l}.weight"), 4099 + 1021 * l));
        tensors.push((format!("layer{l}.bias"), 61 + 7 * l));
    }
    tensors.push((REPLICATED.to_string(), 257));
    tensors
}

/// Which ranks hold tensor `i` of the model.
fn holds(mode: Mode, i: usize, name: &str, rank: usize, ranks: usize) -> bool {
    mode == Mode::Data || name == REPLICATED || i % ranks == rank
}

/// splitmix64: deterministic values in [-1, 1) from a seed and an index.
fn uniform(seed: u64, i: u64) -> f32 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One tensor's quadratic: curvature `a ∈ [0.5, 1.5)` and optimum `c ∈ [-2, 2)`.
struct Quadratic {
    name: String,
    a: Vec<f32>,
    c: Vec<f32>,
}

impl Quadratic {
    fn new(name: &str, n: usize) -> Quadratic {
        let seed = name_seed(name);
        Quadratic {
            name: name.to_string(),
            a: (0..n as u64)
                .map(|i| 1.0 + 0.5 * uniform(seed, i))
                .collect(),
            c: (0..n as u64).map(|i| 2.0 * uniform(seed ^ 1, i)).collect(),
        }
    }

    /// `a (w − c) + 0.1 ξ`, with `ξ` the noise of step `step` of data shard `data`.
    fn grad(&self, w: &[f32], step: u64, data: u64) -> Vec<f32> {
        let seed = name_seed(&self.name) ^ (step << 20) ^ (data << 50);
        w.iter()
            .zip(self.a.iter().zip(&self.c))
            .enumerate()
            .map(|(i, (&w, (&a, &c)))| a * (w - c) + 0.1 * uniform(seed, i as u64))
            .collect()
    }

    fn loss(&self, w: &[f32]) -> f64 {
        w.iter()
            .zip(self.a.iter().zip(&self.c))
            .map(|(&w, (&a, &c))| 0.5 * f64::from(a) * f64::from(w - c).powi(2))
            .sum()
    }
}

/// One rank's share: its tensors, their parameters and gradients, its optimizer.
struct Shard {
    tensors: Vec<Quadratic>,
    set: ParamSet,
    opt: AdamW,
}

impl Shard {
    /// A set of `names` on `ctx`, parameters 0, AdamW with the replicated tensor (if held)
    /// in a replicated group.
    fn new(ctx: &Context, tensors: Vec<Quadratic>) -> Result<Shard, Box<dyn Error>> {
        let specs: Vec<TensorSpec> = tensors
            .iter()
            .map(|t| TensorSpec::new(t.name.clone(), [t.a.len()]))
            .collect();
        let set = ctx.param_set(&specs)?;
        let config = AdamWConfig {
            lr: 1e-2,
            weight_decay: 0.01,
            ..Default::default()
        };
        let (rep, own): (Vec<&Quadratic>, Vec<&Quadratic>) =
            tensors.iter().partition(|t| t.name == REPLICATED);
        let mut groups = vec![ParamGroup::new(own.iter().map(|t| t.name.clone()), config)];
        if !rep.is_empty() {
            groups.push(ParamGroup::new([REPLICATED], config).replicated());
        }
        let opt = AdamW::with_groups(&set, groups)?;
        Ok(Shard { tensors, set, opt })
    }

    /// Computes and uploads the gradients of step `step` as data shards `data` see them
    /// (averaged in order when several), with a NaN in the first tensor when `poison`;
    /// returns the loss before the step (the replicated tensor's only when `count_replicated`).
    fn upload_grads(
        &mut self, step: u64, data: &[u64], poison: bool, count_replicated: bool,
    ) -> Result<f64, Box<dyn Error>> {
        let params = self.set.download_params()?;
        let mut grads = Vec::with_capacity(params.len());
        let mut loss = 0.0;
        let mut at = 0;
        for t in &self.tensors {
            let w = &params[at..at + t.a.len()];
            at += t.a.len();
            if count_replicated || t.name != REPLICATED {
                loss += t.loss(w);
            }
            let mut g = vec![0.0f32; w.len()];
            for &d in data {
                g.iter_mut()
                    .zip(t.grad(w, step, d))
                    .for_each(|(s, x)| *s += x);
            }
            let inv = 1.0 / data.len() as f32;
            g.iter_mut().for_each(|x| *x *= inv);
            grads.extend(g);
        }
        if poison {
            grads[0] = f32::NAN;
        }
        self.set.upload_grads(&grads)?;
        Ok(loss)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let universe = mpi::initialize().ok_or("MPI was already initialised")?;
    let world = universe.world();
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let ctx = Context::new()?;
    if rank == 0 {
        println!(
            "{ranks} rank(s), mode {:?}, {} steps, rank 0 on {}",
            args.mode,
            args.steps,
            ctx.describe()
        );
    }
    let mine: Vec<Quadratic> = model()
        .iter()
        .enumerate()
        .filter(|(i, (name, _))| holds(args.mode, *i, name, rank, ranks))
        .map(|(_, (name, n))| Quadratic::new(name, *n))
        .collect();
    let mut shard = Shard::new(&ctx, mine)?;
    let clip = Clip::GlobalNorm {
        max_norm: args.max_norm,
        norm: Norm::L2,
    };
    let last = ranks - 1;
    let mut mismatches = 0;
    let mut skipped_steps = 0;
    // Seconds in phase 1 (norm pass + readback), the combine (all-gather), phase 2 (step to
    // its report read back), summed over steps.
    let mut timing = [0.0f64; 3];
    for step in 0..args.steps {
        let poison = args.nan_at == Some(step) && rank == last;
        let (loss, options) = match args.mode {
            Mode::Shard => {
                let loss = shard.upload_grads(step, &[0], poison, rank == 0)?;
                // Phase 1: this rank's exact partial; combine: one all-gather.
                let start = Instant::now();
                let partial =
                    shard
                        .opt
                        .norm_partial(&mut shard.set, Norm::L2, Nonfinite::Skip, rank)?;
                let gathered = Instant::now();
                let total = all_gather_total_norm(&world, &partial)?;
                timing[0] += (gathered - start).as_secs_f64();
                timing[1] += gathered.elapsed().as_secs_f64();
                (
                    loss,
                    StepOptions {
                        clip,
                        total_norm: Some(total),
                        ..Default::default()
                    },
                )
            }
            Mode::Data => {
                let loss = shard.upload_grads(step, &[rank as u64], poison, true)?;
                average_grads(&world, &mut shard.set)?;
                (
                    loss / ranks as f64,
                    StepOptions {
                        clip,
                        ..Default::default()
                    },
                )
            }
        };
        // Phase 2 (or the one-pass step in data mode).
        let start = Instant::now();
        let state = shard.opt.step(&mut shard.set, &options)?.read_blocking()?;
        timing[2] += start.elapsed().as_secs_f64();
        log_loss(&world, rank, step, &args, loss, state.total_norm);
        skipped_steps += u64::from(state.skipped);
        if args.check {
            let mine = [
                u64::from(state.total_norm.to_bits()),
                u64::from(state.skipped),
            ];
            let mut all = vec![0u64; 2 * ranks];
            world.all_gather_into(&mine[..], &mut all[..]);
            if all.chunks(2).any(|r| r != mine) {
                eprintln!(
                    "rank {rank}: step {step}: ranks disagree on (norm bits, skipped): {all:?}"
                );
                mismatches += 1;
            }
            if args.nan_at == Some(step) && !state.skipped {
                eprintln!("rank {rank}: step {step} had a NaN on rank {last} but was not skipped");
                mismatches += 1;
            }
        }
    }
    if args.check {
        mismatches += check_against_one_process(&world, &ctx, &shard, &args)?;
    }
    let mut all = vec![0u64; ranks];
    world.all_gather_into(&(mismatches as u64), &mut all[..]);
    if rank == 0 {
        println!(
            "steps skipped: {skipped_steps}, step count: {}; mismatches per rank: {all:?}",
            shard.opt.states().step_count()?
        );
        let ms = |s: f64| 1e3 * s / args.steps.max(1) as f64;
        println!(
            "rank 0, ms per step: phase 1 (norm pass + readback) {:.3}, all-gather {:.3}, phase 2 (step, report read) {:.3}",
            ms(timing[0]),
            ms(timing[1]),
            ms(timing[2])
        );
    }
    if all.iter().any(|&m| m != 0) {
        return Err("ranks disagree (see above)".into());
    }
    Ok(())
}

/// Rank 0 prints the global loss (the sum of the ranks' losses, the replicated tensor's
/// once) and the step's global norm every `log_every` steps.
fn log_loss<C: CommunicatorCollectives>(
    world: &C, rank: usize, step: u64, args: &Args, loss: f64, norm: f32,
) {
    if !step.is_multiple_of(args.log_every.max(1)) && step + 1 != args.steps {
        return;
    }
    let mut all = vec![0f64; world.size() as usize];
    world.all_gather_into(&loss, &mut all[..]);
    if rank == 0 {
        let total: f64 = all.iter().sum();
        println!("step {step:4}  loss {total:12.4}  global norm {norm:10.4}");
    }
}

/// Every rank sends its parameters to rank 0, which runs the whole model in one process and
/// compares: bit for bit against the same path, and the one-pass step's distance. Returns
/// the number of mismatches found (rank 0; 0 elsewhere).
fn check_against_one_process<C: Communicator>(
    world: &C, ctx: &Context, shard: &Shard, args: &Args,
) -> Result<usize, Box<dyn Error>> {
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let params = shard.set.download_params()?;
    if rank != 0 {
        world.process_at_rank(0).send(&params[..]);
        return Ok(0);
    }
    let everything: Vec<Quadratic> = model()
        .iter()
        .map(|(n, len)| Quadratic::new(n, *len))
        .collect();
    let mut same_path = Shard::new(ctx, everything)?;
    let mut one_pass = Shard::new(
        ctx,
        model()
            .iter()
            .map(|(n, len)| Quadratic::new(n, *len))
            .collect(),
    )?;
    let clip = Clip::GlobalNorm {
        max_norm: args.max_norm,
        norm: Norm::L2,
    };
    let data: Vec<u64> = match args.mode {
        Mode::Shard => vec![0],
        Mode::Data => (0..ranks as u64).collect(),
    };
    let poisoned = |step| args.nan_at == Some(step);
    for step in 0..args.steps {
        // The NaN lands in the last rank's first tensor: find it in the whole model.
        let poison_first = poisoned(step) && first_tensor_of(args.mode, ranks - 1, ranks) == 0;
        same_path.upload_grads(step, &data, poison_first, true)?;
        one_pass.upload_grads(step, &data, poison_first, true)?;
        if poisoned(step) && !poison_first {
            for s in [&mut same_path, &mut one_pass] {
                let t = first_tensor_of(args.mode, ranks - 1, ranks);
                let name = s.tensors[t].name.clone();
                let mut g = s.set.download_grad(&name)?;
                g[0] = f32::NAN;
                s.set.upload_grad(&name, &g)?;
            }
        }
        let options = match args.mode {
            Mode::Shard => {
                let partial =
                    same_path
                        .opt
                        .norm_partial(&mut same_path.set, Norm::L2, Nonfinite::Skip, 0)?;
                StepOptions {
                    clip,
                    total_norm: Some(clipstep::shard::combine(&[partial])?),
                    ..Default::default()
                }
            }
            Mode::Data => StepOptions {
                clip,
                ..Default::default()
            },
        };
        same_path.opt.step(&mut same_path.set, &options)?;
        let plain = StepOptions {
            clip,
            ..Default::default()
        };
        one_pass.opt.step(&mut one_pass.set, &plain)?;
    }
    // Each rank's parameters, in its set's order, against the same tensors of one process.
    let mut mismatches = 0;
    let mut worst = 0.0f64;
    let names: Vec<(usize, String)> = model().into_iter().map(|(n, _)| n).enumerate().collect();
    for r in 0..ranks {
        let got = if r == 0 {
            params.clone()
        } else {
            world.process_at_rank(r as i32).receive_vec::<f32>().0
        };
        let mut at = 0;
        for (i, name) in names
            .iter()
            .filter(|(i, n)| holds(args.mode, *i, n, r, ranks))
        {
            let want = same_path.set.download_param(name)?;
            let here = &got[at..at + want.len()];
            at += want.len();
            if here
                .iter()
                .zip(&want)
                .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                eprintln!("rank {r}: tensor {i} {name} differs from one process's");
                mismatches += 1;
            }
            let fused = one_pass.set.download_param(name)?;
            for (a, b) in here.iter().zip(&fused) {
                let rel = f64::from((a - b).abs()) / f64::from(b.abs()).max(1e-3);
                worst = worst.max(rel);
            }
        }
        if at != got.len() {
            eprintln!("rank {r}: sent {} parameters, expected {at}", got.len());
            mismatches += 1;
        }
    }
    println!(
        "check: every rank's parameters {} one process's bit for bit; one-pass fused step within {worst:.2e} relative",
        if mismatches == 0 { "equal" } else { "DO NOT equal" }
    );
    Ok(mismatches)
}

/// The model index of the first tensor rank `r` holds.
fn first_tensor_of(mode: Mode, r: usize, ranks: usize) -> usize {
    model()
        .iter()
        .enumerate()
        .position(|(i, (n, _))| holds(mode, i, n, r, ranks))
        .expect("every rank holds a tensor")
}
