//! Memory stays flat over a long run: 1,000 clipped AdamW steps (each report read) on the
//! suite's adapter, resident memory sampled after a 200-step warm-up and at the end. The
//! test binary holds this one test, so no other test's allocations move the numbers.
//! `clipstep soak` runs the same loop for as long as asked (10,000 steps in README).

mod common;

use clipstep_tools::soak;

/// Growth allowed after warm-up: allocator noise, far below one leaked byte per element
/// per step (the set has 65,536 elements: a per-step leak of even 1 KiB reaches 0.8 MiB).
const MAX_GROWTH_BYTES: i64 = 4 << 20;

#[test]
fn a_thousand_steps_keep_resident_memory_flat() {
    let config = soak::SoakConfig {
        steps: 1000,
        tensors: 200,
        elements: 1 << 16,
        every: 100,
        warmup: 200,
    };
    let report = soak::run(&common::ctx(), &config, &mut |_| {}).unwrap();
    assert_eq!(report.samples.len(), 10);
    assert_eq!(report.samples.last().unwrap().step, 1000);
    let Some(growth) = report.growth_bytes() else {
        eprintln!("no /proc/self/statm on this system: resident memory not measured");
        return;
    };
    let trace: Vec<String> = report
        .samples
        .iter()
        .map(|s| {
            let kib = s.rss_bytes.unwrap_or(0) >> 10;
            format!("step {}: {kib} KiB, {:.2} ms/step", s.step, s.ms_per_step)
        })
        .collect();
    assert!(
        growth <= MAX_GROWTH_BYTES,
        "resident memory grew {growth} bytes after warm-up: {trace:?}"
    );
}
