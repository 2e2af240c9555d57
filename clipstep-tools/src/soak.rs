//! `clipstep soak`: many clipped AdamW steps on one set, with the process's resident memory
//! and the time per step sampled at intervals, so a leak (in clipstep, wgpu or the driver)
//! shows as growth after warm-up. `tests/soak.rs` runs it for 1,000 steps and bounds the
//! growth; the CLI runs it for as long as asked.

use std::time::Instant;

use clipstep::{AdamW, AdamWConfig, Clip, Context, Norm, Optimizer, StepOptions, TensorSpec};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Steps to run.
    pub steps: u32,
    /// Tensors in the set.
    pub tensors: usize,
    /// Elements over all tensors.
    pub elements: usize,
    /// Steps between samples.
    pub every: u32,
    /// Steps before the baseline sample (allocator and driver caches settle).
    pub warmup: u32,
}

/// One sample: after `step` steps, the resident set size and the mean time per step since
/// the previous sample.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Steps done.
    pub step: u32,
    /// Resident set size in bytes (`None` where `/proc/self/statm` does not exist).
    pub rss_bytes: Option<u64>,
    /// Mean wall time per step since the previous sample, in ms.
    pub ms_per_step: f64,
}

/// The run's result: the samples, and the growth from the first sample after warm-up.
#[derive(Clone, Debug)]
pub struct SoakReport {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// RSS at the end of warm-up, in bytes.
    pub baseline_rss: Option<u64>,
    /// RSS at the end, in bytes.
    pub final_rss: Option<u64>,
}

impl SoakReport {
    /// Growth from the end of warm-up to the end, in bytes (negative: shrank).
    pub fn growth_bytes(&self) -> Option<i64> {
        Some(self.final_rss? as i64 - self.baseline_rss? as i64)
    }
}

/// The process's resident set size (Linux `/proc/self/statm`, in pages of 4 KiB).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Runs `config.steps` clipped AdamW steps (global L2 norm clip, every report read, as a
/// training loop that logs the norm does), calling `on_sample` at each sample.
pub fn run(
    ctx: &Context, config: &SoakConfig, on_sample: &mut dyn FnMut(&Sample),
) -> clipstep::Result<SoakReport> {
    let tensors = config.tensors.max(1);
    let per_tensor = (config.elements / tensors).max(1);
    let specs: Vec<TensorSpec> = (0..tensors)
        .map(|i| TensorSpec::new(format!("t{i}"), [per_tensor]))
        .collect();
    let mut set = ctx.param_set(&specs)?;
    let numel = set.numel() as usize;
    let params: Vec<f32> = (0..numel)
        .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
        .collect();
    let grads: Vec<f32> = (0..numel)
        .map(|i| ((i % 89) as f32 - 44.0) * 1e-2)
        .collect();
    set.upload_params(&params)?;
    set.upload_grads(&grads)?;
    let mut opt = AdamW::new(&set, AdamWConfig::default())?;
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    let mut samples = Vec::new();
    let mut baseline_rss = None;
    let mut since = Instant::now();
    let mut last = 0u32;
    for step in 1..=config.steps {
        let state = opt.step(&mut set, &options)?.read_blocking()?;
        debug_assert!(!state.skipped);
        let at_sample = step % config.every.max(1) == 0 || step == config.steps;
        if at_sample || step == config.warmup {
            let sample = Sample {
                step,
                rss_bytes: rss_bytes(),
                ms_per_step: since.elapsed().as_secs_f64() * 1e3 / f64::from(step - last),
            };
            if step == config.warmup {
                baseline_rss = sample.rss_bytes;
            }
            (last, since) = (step, Instant::now());
            samples.push(sample);
            on_sample(&sample);
        }
    }
    Ok(SoakReport {
        final_rss: samples.last().and_then(|s| s.rss_bytes),
        baseline_rss: baseline_rss.or_else(|| samples.first().and_then(|s| s.rss_bytes)),
        samples,
    })
}
