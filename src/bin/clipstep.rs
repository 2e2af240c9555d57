//! `clipstep devices | verify`: the adapters wgpu sees, and every kernel checked against
//! the CPU reference on one of them.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use clipstep::{Context, ContextOptions};

#[derive(Parser)]
#[command(
    name = "clipstep",
    version,
    about = "GPU gradient clipping and fused optimizer steps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters wgpu sees: name, backend, type, key limits.
    Devices(DeviceArgs),
    /// Run every kernel against the CPU reference; exit non-zero on any mismatch.
    Verify(DeviceArgs),
}

#[derive(Args, Clone)]
struct DeviceArgs {
    /// Case-insensitive part of the adapter name (default: the best adapter, or WGPU_ADAPTER_NAME).
    #[arg(long)]
    adapter: Option<String>,
    /// Backend: vulkan, gl, metal, dx12 (default: WGPU_BACKEND, else all).
    #[arg(long)]
    backend: Option<String>,
}

impl DeviceArgs {
    fn backends(&self) -> Result<Option<wgpu::Backends>, String> {
        self.backend
            .as_deref()
            .map(|b| {
                let parsed = wgpu::Backends::from_comma_list(b);
                if parsed.is_empty() {
                    Err(format!(
                        "unknown backend {b:?}; use vulkan, gl, metal or dx12"
                    ))
                } else {
                    Ok(parsed)
                }
            })
            .transpose()
    }

    fn context(&self) -> Result<Context, String> {
        Context::with_options(&ContextOptions {
            backends: self.backends()?,
            adapter_name: self.adapter.clone(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices(args) => devices(&args),
        Command::Verify(args) => verify(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clipstep: {e}");
            ExitCode::from(2)
        }
    }
}

fn devices(args: &DeviceArgs) -> Result<ExitCode, String> {
    let adapters = clipstep::adapters(args.backends()?);
    if adapters.is_empty() {
        println!("no adapters (the CPU reference would be used)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<8} {:<14} {:>14} {:>14} {:>10} {:>10}",
        "adapter", "backend", "type", "max binding", "max buffer", "wg/dim", "timestamps"
    );
    for a in adapters {
        println!(
            "{:<40} {:<8} {:<14} {:>14} {:>14} {:>10} {:>10}",
            a.info.name,
            format!("{:?}", a.info.backend),
            format!("{:?}", a.info.device_type),
            a.limits.max_storage_buffer_binding_size,
            a.limits.max_buffer_size,
            a.limits.max_compute_workgroups_per_dimension,
            if a.timestamp_queries { "yes" } else { "no" },
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &DeviceArgs) -> Result<ExitCode, String> {
    let ctx = args.context()?;
    println!("verifying on {}", ctx.describe());
    let checks = clipstep::verify::verify(&ctx).map_err(|e| e.to_string())?;
    println!(
        "{:<34} {:<24} {:>10} {:>7} {:>6} {:>10} {:>10} {:>9}  result",
        "operation", "case", "elements", "tensors", "slabs", "max abs", "max rel", "tol"
    );
    let mut failed = 0;
    for c in &checks {
        failed += usize::from(!c.pass);
        println!(
            "{:<34} {:<24} {:>10} {:>7} {:>6} {:>10.2e} {:>10.2e} {:>9.1e}  {}",
            c.op,
            c.case,
            c.numel,
            c.tensors,
            c.slabs,
            c.max_abs,
            c.max_rel,
            c.tolerance,
            if c.pass { "pass" } else { "FAIL" }
        );
    }
    println!("{} passed, {} failed", checks.len() - failed, failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
