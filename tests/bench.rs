//! `clipstep bench` runs end to end at a tiny size (structure only: speed is measured by
//! the benchmarks, never asserted by tests).

mod common;

use clipstep_tools::bench::{run, BenchConfig};

#[test]
fn bench_measures_every_operation_and_ratio() {
    let config = BenchConfig {
        sizes: vec![4096, 10_240],
        many_tensors: 10,
        pooled_tensors: 7,
        warmup: 0,
        warm_seconds: 0.01,
        repeats: 1,
        only: None,
        matmul_sizes: vec![64, 100],
        muon_model: (1, 32),
    };
    let mut progress_lines = 0;
    let report = run(&common::ctx(), &config, &mut |_| progress_lines += 1).unwrap();
    // Per size: the shader copy, the buffer copy, the faster of the two again as the
    // roofline, a row per registered rule but AdamW and Muon (a compute row below), and 18
    // more operations (AdamW's, 4 of them mixed precision, the norm and the clips,
    // Adafactor on matrices).
    let rows = 3 + (common::registered_rules().len() - 2) + 18;
    assert_eq!(report.measurements.len(), 2 * rows, "{rows} rows per size");
    assert_eq!(report.ratios.len(), 2);
    assert_eq!(report.encode.len(), 3);
    assert!(report
        .encode
        .iter()
        .all(|e| 0.0 < e.min_us && e.min_us <= e.median_us && e.finish_median_us > 0.0));
    assert!(report.skipped.is_empty());
    // The device is warmed before each size's roofline, at least one copy each.
    let warmed: Vec<u64> = report.warm_up.iter().map(|w| w.elements).collect();
    assert_eq!(warmed, [4096, 10_240]);
    assert!(report
        .warm_up
        .iter()
        .all(|w| w.copies >= 1 && w.first_ms > 0.0));
    // The rows, 7 paired ratios and the warm-up per size (the roofline row is repeated), 3
    // encode costs, 4 compute rows.
    assert_eq!(progress_lines, 2 * (rows - 1 + 7 + 1) + 3 + 4);
    // Two products, Newton–Schulz and a Muon step over one layer's six matrices, whose
    // FLOPs are the products': 5 steps of 2·(2m²n + m³) for each m ≤ n.
    let ops: Vec<&str> = report.compute.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(
        ops,
        [
            "matmul f32 64×64×64",
            "matmul f32 100×100×100",
            "Newton–Schulz (bf16, 5 steps), 1 layers of width 32",
            "Muon + clip (step), 1 layers of width 32"
        ]
    );
    let ns = |m: u64, n: u64| 5 * 2 * (2 * m * m * n + m * m * m);
    let flops = [
        2 * 64u64.pow(3),
        2 * 100u64.pow(3),
        4 * ns(32, 32) + 2 * ns(32, 128),
    ];
    for (c, want) in report
        .compute
        .iter()
        .zip(flops.into_iter().chain([flops[2]]))
    {
        assert_eq!(c.flops, want, "{c:?}");
        assert_eq!(c.matrices, if c.op.starts_with("matmul") { 1 } else { 6 });
        assert!(c.min_ms <= c.median_ms && c.median_ms <= c.max_ms, "{c:?}");
        assert!(c.gflop_per_s > 0.0 && c.median_ms > 0.0, "{c:?}");
    }
    for m in &report.measurements {
        assert!(
            m.median_ms > 0.0 && m.gb_per_s > 0.0 && m.fraction_of_copy > 0.0,
            "{m:?}"
        );
        assert!(m.min_ms <= m.median_ms && m.median_ms <= m.max_ms, "{m:?}");
        let [lo, hi] = m.fraction_range;
        assert!(
            lo <= m.fraction_of_copy && m.fraction_of_copy <= hi,
            "{m:?}"
        );
    }
    let roofline = |n: u64| {
        let row = |op: &str| {
            report
                .measurements
                .iter()
                .find(|m| m.op == op && m.elements == n)
                .unwrap()
                .median_ms
        };
        let fastest = row("copy (shader)").min(row("copy (copy_buffer_to_buffer)"));
        (row("copy (roofline)"), fastest)
    };
    for n in [4096, 10_240] {
        let (roofline, fastest) = roofline(n);
        assert_eq!(roofline, fastest, "the roofline is the faster copy");
    }
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"fused_speedup_over_unfused\""));
    assert!(json.contains("\"bf16_adamw_over_f32_time\""));
    assert!(report
        .measurements
        .iter()
        .any(|m| m.op == "AdamW + clip (fused), bf16 grads + params, f32 master, bf16 moments"));
    assert!(json.contains("\"many_over_one_tensor_time\":{\"median\""));
    for r in &report.ratios {
        for p in [
            r.fused_speedup_over_unfused,
            r.bf16_adamw_over_f32_time,
            r.f16_adamw_over_bf16_time,
            r.many_over_one_tensor_time,
            r.three_groups_over_one_group_time,
            r.pooled_over_own_slabs_time,
            r.pooled_split_over_own_slabs_time,
        ] {
            assert!(
                0.0 < p.min && p.min <= p.median && p.median <= p.max,
                "{r:?}"
            );
        }
    }
}

#[test]
fn only_measures_the_named_operations_beside_the_roofline() {
    let config = BenchConfig {
        sizes: vec![4096],
        many_tensors: 10,
        pooled_tensors: 7,
        warmup: 0,
        warm_seconds: 0.0,
        repeats: 3,
        only: Some("global_norm".into()),
        matmul_sizes: vec![64],
        muon_model: (1, 16),
    };
    let report = run(&common::ctx(), &config, &mut |_| {}).unwrap();
    let ops: Vec<&str> = report.measurements.iter().map(|m| m.op.as_str()).collect();
    assert_eq!(
        ops,
        [
            "copy (shader)",
            "copy (copy_buffer_to_buffer)",
            "copy (roofline)",
            "global_norm (L2)"
        ]
    );
    assert!(report.compute.is_empty(), "{:?}", report.compute);
    // The fused step was left out: its ratios are unknown, not made up.
    assert!(report.ratios[0].fused_adamw_fraction_of_copy.is_nan());
    assert!(report.ratios[0].many_over_one_tensor_time.median.is_nan());
    assert!(report.ratios[0].f16_adamw_over_bf16_time.median.is_nan());
    // No warm-up asked for: none run.
    assert!(report.warm_up.is_empty());
}
