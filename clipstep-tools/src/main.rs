//! `clipstep devices | verify | bench | soak`: the adapters wgpu sees, every kernel checked
//! against the CPU reference on one of them, each operation's bandwidth against the
//! device's copy bandwidth, and memory and time per step over a long run. The harnesses are
//! `clipstep-tools`' library, which the tests share.

use clipstep_tools::{bench, harness, soak};

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
    /// Measure each operation's bandwidth against the device's copy bandwidth.
    Bench(BenchArgs),
    /// Run many clipped AdamW steps; print resident memory and time per step at intervals.
    Soak(SoakArgs),
}

#[derive(Args)]
struct SoakArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Steps to run.
    #[arg(long, default_value_t = 10_000)]
    steps: u32,
    /// Tensors in the set.
    #[arg(long, default_value_t = 200)]
    tensors: usize,
    /// Elements over all tensors (suffixes K and M are powers of two).
    #[arg(long, default_value = "1M")]
    elements: String,
    /// Steps between samples.
    #[arg(long, default_value_t = 1000)]
    every: u32,
    /// Steps before the baseline sample.
    #[arg(long, default_value_t = 200)]
    warmup: u32,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Elements per set, comma-separated (suffixes K and M are powers of two).
    #[arg(long, value_delimiter = ',', default_values_t = ["1M".to_string(), "16M".to_string(), "64M".to_string()])]
    sizes: Vec<String>,
    /// Tensors in the many-tensor set.
    #[arg(long, default_value_t = 2000)]
    tensors: usize,
    /// External tensors in the pooled-buffer sets (3 caller buffers).
    #[arg(long, default_value_t = 1000)]
    pooled_tensors: usize,
    /// Untimed runs before measuring a row, at least (and until 50 ms have passed).
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// Seconds of back-to-back copies that warm the device before each size's roofline.
    #[arg(long, default_value_t = 1.0)]
    warm_seconds: f64,
    /// Timed runs at least (the median is reported); a short operation runs until 0.25 s
    /// of its own time, up to 4× this.
    #[arg(long, default_value_t = 7)]
    repeats: u32,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Measure only the operations whose name contains this, e.g. "global_norm" (the copy
    /// roofline always runs); `|` separates alternatives, and a leading `=` asks for the
    /// whole name, e.g. "=AdamW + clip (fused)|AdamW8bit"
    #[arg(long)]
    only: Option<String>,
    /// Sides of the square f32 matrix products timed as GFLOP/s, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [256, 512, 1024])]
    matmul_sizes: Vec<usize>,
    /// The transformer whose matrices Newton–Schulz and a Muon step are timed over:
    /// LAYERSxWIDTH (per layer four WIDTH² projections and the MLP's two 4·WIDTH²).
    #[arg(long, default_value = "4x256")]
    muon_model: String,
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
        Command::Bench(args) => bench(&args),
        Command::Soak(args) => soak(&args),
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

/// How `ctx` folds the norm partials, as `verify` and `bench` say it.
fn norm_fold(ctx: &Context) -> String {
    ctx.subgroup_size()
        .map_or("workgroup memory".to_string(), |s| {
            format!("subgroups of {s}")
        })
}

fn verify(args: &DeviceArgs) -> Result<ExitCode, String> {
    let ctx = args.context()?;
    println!(
        "verifying on {} (fma fused: {}, norm fold: {})",
        ctx.describe(),
        ctx.fused_fma()
            .map_or("n/a", |f| if f { "yes" } else { "no" }),
        norm_fold(&ctx)
    );
    let checks = harness::verify(&ctx).map_err(|e| e.to_string())?;
    println!(
        "{:<38} {:<24} {:>10} {:>7} {:>6} {:>10} {:>10} {:>9}  result",
        "operation", "case", "elements", "tensors", "slabs", "max abs", "max rel", "tol"
    );
    let mut failed = 0;
    for c in &checks {
        failed += usize::from(!c.pass);
        println!(
            "{:<38} {:<24} {:>10} {:>7} {:>6} {:>10.2e} {:>10.2e} {:>9.1e}  {}",
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

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, scale) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .map(|n| n * scale)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("bad size {s:?}: use a positive count like 1000, 64K or 16M"))
}

/// `LAYERSxWIDTH`, e.g. `12x768`: both positive.
fn parse_model(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("bad model {s:?}: use LAYERSxWIDTH, like 4x256 or 12x768");
    let (layers, width) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    match (layers.parse::<usize>(), width.parse::<usize>()) {
        (Ok(l), Ok(w)) if l > 0 && w > 0 => Ok((l, w)),
        _ => Err(bad()),
    }
}

fn bench(args: &BenchArgs) -> Result<ExitCode, String> {
    let ctx = args.device.context()?;
    if !ctx.is_gpu() {
        return Err("bench needs a GPU adapter (see `clipstep devices`)".into());
    }
    let config = bench::BenchConfig {
        sizes: args
            .sizes
            .iter()
            .map(|s| parse_size(s))
            .collect::<Result<_, _>>()?,
        many_tensors: args.tensors.max(1),
        pooled_tensors: args.pooled_tensors.max(1),
        warmup: args.warmup,
        warm_seconds: args.warm_seconds,
        repeats: args.repeats.max(1),
        only: args.only.clone(),
        matmul_sizes: args.matmul_sizes.clone(),
        muon_model: parse_model(&args.muon_model)?,
    };
    eprintln!(
        "benchmarking on {} (norm fold: {})",
        ctx.describe(),
        norm_fold(&ctx)
    );
    let mut progress = |what: &str| eprint!("\r\x1b[2K  measuring {what}");
    let report = bench::run(&ctx, &config, &mut progress).map_err(|e| e.to_string())?;
    eprintln!("\r\x1b[2K  done");
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({}), timing by {}",
        report.adapter, report.backend, report.timing
    );
    println!(
        "{:<46} {:>10} {:>7} {:>10} {:>10} {:>10} {:>9} {:>8}",
        "operation", "elements", "tensors", "median ms", "min ms", "max ms", "GB/s", "of copy"
    );
    println!("{:>115} {:>8}", "(range)", "of shader copy");
    // "of copy": the median of each run's bandwidth over the copy run just before it; the
    // range beside it is the smallest and largest of those ratios.
    for m in &report.measurements {
        println!(
            "{:<46} {:>10} {:>7} {:>10.3} {:>10.3} {:>10.3} {:>9.1} {:>7.0}% {:>4.0}-{:<4.0} {:>7.0}%",
            m.op,
            m.elements,
            m.tensors,
            m.median_ms,
            m.min_ms,
            m.max_ms,
            m.gb_per_s,
            m.fraction_of_copy * 100.0,
            m.fraction_range[0] * 100.0,
            m.fraction_range[1] * 100.0,
            m.fraction_of_shader_copy * 100.0
        );
    }
    println!();
    // Time ratios between two operations timed alternately: median (range over pairs).
    let paired = |p: &bench::Paired| format!("{:.2} ({:.2}-{:.2})", p.median, p.min, p.max);
    println!(
        "{:>10} {:>19} {:>19} {:>22} {:>22} {:>22} {:>22} {:>22} {:>22} {:>22}",
        "elements",
        "fused AdamW / copy",
        "... / shader copy",
        "unfused / fused time",
        "many / 1 tensor",
        "3 groups / 1",
        "pooled / own",
        "pooled split / own",
        "bf16 / f32 time",
        "f16 / bf16 time"
    );
    for r in &report.ratios {
        println!(
            "{:>10} {:>19.2} {:>19.2} {:>22} {:>22} {:>22} {:>22} {:>22} {:>22} {:>22}",
            r.elements,
            r.fused_adamw_fraction_of_copy,
            r.fused_adamw_fraction_of_shader_copy,
            paired(&r.fused_speedup_over_unfused),
            paired(&r.many_over_one_tensor_time),
            paired(&r.three_groups_over_one_group_time),
            paired(&r.pooled_over_own_slabs_time),
            paired(&r.pooled_split_over_own_slabs_time),
            paired(&r.bf16_adamw_over_f32_time),
            paired(&r.f16_adamw_over_bf16_time)
        );
    }
    if !report.compute.is_empty() {
        println!();
        println!(
            "{:<52} {:>8} {:>12} {:>10} {:>10} {:>10} {:>9}",
            "compute-bound", "matrices", "GFLOP", "median ms", "min ms", "max ms", "GFLOP/s"
        );
    }
    for c in &report.compute {
        println!(
            "{:<52} {:>8} {:>12.3} {:>10.3} {:>10.3} {:>10.3} {:>9.1}",
            c.op,
            c.matrices,
            c.flops as f64 / 1e9,
            c.median_ms,
            c.min_ms,
            c.max_ms,
            c.gflop_per_s
        );
    }
    for w in &report.warm_up {
        println!(
            "warm-up before the {} element roofline: {} shader copies in {:.2} s, the first {:.3} ms, the last {:.3} ms",
            w.elements, w.copies, w.seconds, w.first_ms, w.last_ms
        );
    }
    for note in &report.skipped {
        println!("skipped (did not fit the device): {note}");
    }
    println!();
    for e in &report.encode {
        println!(
            "host encode of one fused AdamW step, {:>5} tensors in {}: median {:.1} µs (min {:.1} µs), the encoder's finish {:.1} µs more",
            e.tensors, e.storage, e.median_us, e.min_us, e.finish_median_us
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn soak(args: &SoakArgs) -> Result<ExitCode, String> {
    let ctx = args.device.context()?;
    let config = soak::SoakConfig {
        steps: args.steps.max(1),
        tensors: args.tensors.max(1),
        elements: parse_size(&args.elements)? as usize,
        every: args.every.max(1),
        warmup: args.warmup,
    };
    println!(
        "soak on {}: {} clipped AdamW steps, {} tensors, {} elements",
        ctx.describe(),
        config.steps,
        config.tensors,
        config.elements
    );
    println!("{:>8} {:>12} {:>12}", "step", "RSS MiB", "ms/step");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let report = soak::run(&ctx, &config, &mut |s| {
        let rss = s
            .rss_bytes
            .map_or("n/a".to_string(), |b| format!("{:.1}", mib(b)));
        println!("{:>8} {:>12} {:>12.3}", s.step, rss, s.ms_per_step);
    })
    .map_err(|e| e.to_string())?;
    let times: Vec<f64> = report.samples.iter().map(|s| s.ms_per_step).collect();
    let (lo, hi) = times
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    println!("ms/step over the intervals: {lo:.3} to {hi:.3}");
    if let (Some(base), Some(growth)) = (report.baseline_rss, report.growth_bytes()) {
        println!(
            "RSS after warm-up {:.1} MiB, growth {:+.2} MiB ({:+.2}%)",
            mib(base),
            growth as f64 / (1 << 20) as f64,
            growth as f64 * 100.0 / base as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}
