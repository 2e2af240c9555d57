//! `clipstep bench` runs end to end at a tiny size (structure only: speed is measured by
//! the benchmarks, never asserted by tests).

mod common;

#[allow(dead_code)]
#[path = "../src/bin/clipstep/bench.rs"]
mod bench;

use bench::{run, BenchConfig};

#[test]
fn bench_measures_every_operation_and_ratio() {
    let config = BenchConfig {
        sizes: vec![4096, 10_240],
        many_tensors: 10,
        pooled_tensors: 7,
        warmup: 0,
        repeats: 1,
    };
    let mut progress_lines = 0;
    let report = run(&common::ctx(), &config, &mut |_| progress_lines += 1).unwrap();
    assert_eq!(report.measurements.len(), 2 * 20, "20 operations per size");
    assert_eq!(report.ratios.len(), 2);
    assert_eq!(report.encode.len(), 3);
    assert!(report.skipped.is_empty());
    assert_eq!(progress_lines, 2 * 20 + 3);
    for m in &report.measurements {
        assert!(
            m.median_ms > 0.0 && m.gb_per_s > 0.0 && m.fraction_of_copy > 0.0,
            "{m:?}"
        );
        assert!(m.min_ms <= m.median_ms && m.median_ms <= m.max_ms, "{m:?}");
    }
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"fused_speedup_over_unfused\""));
    assert!(report
        .ratios
        .iter()
        .all(|r| r.three_groups_over_one_group_time > 0.0
            && r.pooled_over_own_slabs_time > 0.0
            && r.pooled_split_over_own_slabs_time > 0.0));
}
