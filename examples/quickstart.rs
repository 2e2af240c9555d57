//! The main job: one clipped AdamW step over a few realistic tensors on the best adapter,
//! checked against the CPU reference. Writes a summary to `--out/quickstart.json`.
//!
//!     cargo run --release --example quickstart

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use clipstep::consts::tolerance::{TRAJECTORY_FLOOR, TRAJECTORY_REL};
use clipstep::{
    AdamW, AdamWConfig, Clip, Context, Norm, Optimizer, ParamSet, StepOptions, TensorSpec,
};
use clipstep_tools::support;
use support::harness::{max_errors, sample_data};

/// A small transformer block's parameters.
fn specs() -> Vec<TensorSpec> {
    vec![
        TensorSpec::new("embedding", [1000, 64]),
        TensorSpec::new("attn.qkv.weight", [64, 192]),
        TensorSpec::new("attn.qkv.bias", [192]),
        TensorSpec::new("mlp.fc1.weight", [64, 256]),
        TensorSpec::new("mlp.fc1.bias", [256]),
        TensorSpec::new("mlp.fc2.weight", [256, 64]),
        TensorSpec::new("ln.gamma", [64]),
    ]
}

/// One clipped AdamW step on `ctx`; returns the parameters after it and the step's report values.
fn step_on(ctx: &Context) -> clipstep::Result<(Vec<f32>, clipstep::StepState, ParamSet)> {
    let mut params = ctx.param_set(&specs())?;
    let n = params.numel() as usize;
    params.upload_params(&sample_data(n, 1, 0.05))?;
    // Gradients from "the backward pass": large enough that the clip engages.
    params.upload_grads(&sample_data(n, 2, 0.02))?;
    let mut opt = AdamW::new(
        &params,
        AdamWConfig {
            lr: 3e-4,
            ..Default::default()
        },
    )?;
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    let report = opt.step(&mut params, &options)?; // recorded and submitted, no host sync
    let state = report.read_blocking()?; // the only host sync
    Ok((params.download_params()?, state, params))
}

/// Command-line options.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Where the summary goes.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

/// What the quickstart found.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub adapter: String,
    /// Whether the step ran on a GPU adapter (false: the CPU backend, nothing to compare).
    pub on_gpu: bool,
    pub tensors: usize,
    pub parameters: u64,
    pub slabs: usize,
    pub total_norm: f32,
    pub clip_coef: f32,
    pub step: u32,
    pub skipped: bool,
    pub reference_total_norm: f32,
    pub max_abs_error: f64,
    pub max_rel_error: f64,
}

/// One clipped AdamW step on the best adapter and on the CPU reference.
pub fn run() -> clipstep::Result<Summary> {
    let ctx = Context::new()?;
    let (gpu_params, state, set) = step_on(&ctx)?;
    let (cpu_params, cpu_state, _) = step_on(&Context::cpu())?;
    let (max_abs_error, max_rel_error) = max_errors(&gpu_params, &cpu_params, TRAJECTORY_FLOOR);
    Ok(Summary {
        adapter: ctx.describe(),
        on_gpu: ctx.is_gpu(),
        tensors: set.tensors().len(),
        parameters: set.numel(),
        slabs: set.num_slabs(),
        total_norm: state.total_norm,
        clip_coef: state.clip_coef,
        step: state.step,
        skipped: state.skipped,
        reference_total_norm: cpu_state.total_norm,
        max_abs_error,
        max_rel_error,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let s = run()?;
    println!("adapter: {}", s.adapter);
    println!(
        "{} tensors, {} parameters in {} slab(s)",
        s.tensors, s.parameters, s.slabs
    );
    println!(
        "clipped AdamW step: total gradient norm {:.4}, clip coefficient {:.4}, step {}, skipped {}",
        s.total_norm, s.clip_coef, s.step, s.skipped
    );
    println!(
        "against the CPU reference: total norm {:.4} vs {:.4}; parameters max abs error {:.2e}, max rel error {:.2e}",
        s.total_norm, s.reference_total_norm, s.max_abs_error, s.max_rel_error
    );
    if s.max_rel_error > f64::from(TRAJECTORY_REL) {
        eprintln!(
            "MISMATCH: relative error {:e} over {TRAJECTORY_REL:e}",
            s.max_rel_error
        );
        std::process::exit(1);
    }
    if s.on_gpu {
        println!("ok: the step on {} matches the CPU reference", s.adapter);
    } else {
        println!(
            "ok, but no GPU adapter was found: the step ran on the CPU backend, so it was \
             compared with itself (install a Vulkan driver, e.g. mesa-vulkan-drivers)"
        );
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("quickstart.json"),
        serde_json::to_string_pretty(&s)?,
    )?;
    Ok(())
}
