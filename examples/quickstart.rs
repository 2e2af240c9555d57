//! The main job: one clipped AdamW step over a few realistic tensors on the best adapter,
//! checked against the CPU reference.
//!
//!     cargo run --release --example quickstart

use clipstep::consts::tolerance::TRAJECTORY_REL;
use clipstep::verify::{max_errors, sample_data};
use clipstep::{
    AdamW, AdamWConfig, Clip, Context, Norm, Optimizer, ParamSet, StepOptions, TensorSpec,
};

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

fn main() -> clipstep::Result<()> {
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.describe());
    let (gpu_params, state, set) = step_on(&ctx)?;
    println!(
        "{} tensors, {} parameters in {} slab(s)",
        set.tensors().len(),
        set.numel(),
        set.num_slabs()
    );
    println!(
        "clipped AdamW step: total gradient norm {:.4}, clip coefficient {:.4}, step {}, skipped {}",
        state.total_norm, state.clip_coef, state.step, state.skipped
    );
    let (cpu_params, cpu_state, _) = step_on(&Context::cpu())?;
    let (max_abs, max_rel) = max_errors(&gpu_params, &cpu_params, 1e-2);
    println!(
        "against the CPU reference: total norm {:.4} vs {:.4}; parameters max abs error {max_abs:.2e}, max rel error {max_rel:.2e}",
        state.total_norm, cpu_state.total_norm
    );
    if max_rel > f64::from(TRAJECTORY_REL) {
        eprintln!("MISMATCH: relative error {max_rel:e} over {TRAJECTORY_REL:e}");
        std::process::exit(1);
    }
    println!("ok: GPU step matches the CPU reference");
    Ok(())
}
