//! clip_grad_norm, clip_grads_with_norm, clip_grad_norm_per_tensor and clip_grad_value
//! against the CPU reference.

mod common;

use clipstep::consts::tolerance::{CLIPPED_REL, NORM_REL, TRAJECTORY_REL};
use clipstep::{reference, Error, Nonfinite, Norm};
use common::*;

const PROPAGATE: Nonfinite = Nonfinite::Propagate;
/// Relative comparisons with no absolute slack: zero must stay exactly zero.
const NO_FLOOR: f64 = f64::MIN_POSITIVE;

#[test]
fn clip_grad_norm_scales_like_pytorch_on_awkward_sets() {
    let cases: Vec<(Vec<usize>, Option<u64>)> = vec![
        (vec![0], None),
        (vec![1], None),
        (vec![255, 256, 257], None),
        (vec![1_000_003], None),
        ((0..2000).map(|i| 1 + i % 7).collect(), None),
        (vec![4096 * 5 + 17, 3, 64, 99_991], Some(16 * 1024)),
    ];
    for (sizes, slab) in cases {
        for norm in [Norm::L1, Norm::L2, Norm::Inf, Norm::P(3.0)] {
            let (mut set, grads) = set_with_grads(&ctx(), &sizes, slab, 5);
            let mut want = grads.clone();
            let total =
                reference::clip_grad_norm(&mut split_mut(&mut want, &sizes), 0.5, norm.order());
            let report = set.clip_grad_norm(0.5, norm, PROPAGATE).unwrap();
            let state = report.read_blocking().unwrap();
            let what = format!("{norm:?} over {} tensors", sizes.len());
            let tol = norm_tolerance(norm);
            assert_rel(state.total_norm, total, tol, &what);
            // The coefficient carries the norm's relative error into every element.
            let got = set.download_grads().unwrap();
            assert_close(&got, &want, 2.0 * tol, NO_FLOOR, &what);
        }
    }
}

#[test]
fn clip_grad_norm_below_threshold_leaves_bits_unchanged() {
    let (mut set, grads) = set_with_grads(&ctx(), &[1000, 10], None, 9);
    let state = set
        .clip_grad_norm(1e6, Norm::L2, PROPAGATE)
        .unwrap()
        .read_blocking()
        .unwrap();
    assert_eq!(state.clip_coef, 1.0);
    assert_bits_eq(
        &set.download_grads().unwrap(),
        &grads,
        "unclipped gradients",
    );
}

#[test]
fn clip_grad_norm_on_the_2d_grid_path() {
    let (mut set, grads) = set_with_grads(&ctx_small_grid(), &[50_000, 3], Some(32 * 1024), 2);
    let total = reference::global_norm(&[&grads], 2.0);
    let state = set
        .clip_grad_norm(1.0, Norm::L2, PROPAGATE)
        .unwrap()
        .read_blocking()
        .unwrap();
    assert_rel(state.total_norm, total, NORM_REL, "total");
    let coef = state.clip_coef;
    let got = set.download_grads().unwrap();
    for (g, w) in got.iter().zip(&grads) {
        assert_eq!(*g, w * coef);
    }
}

#[test]
fn nonfinite_policies_of_clip_grad_norm() {
    let sizes = [100, 100];
    let (mut set, mut grads) = set_with_grads(&ctx(), &sizes, None, 4);
    grads[150] = f32::NAN;
    set.upload_grads(&grads).unwrap();

    // Skip: nothing changes.
    let state = set
        .clip_grad_norm(0.1, Norm::L2, Nonfinite::Skip)
        .unwrap()
        .read_blocking()
        .unwrap();
    assert!(state.nonfinite && state.skipped);
    assert_bits_eq(&set.download_grads().unwrap(), &grads, "skipped clip");

    // Error: nothing changes, and reading says why.
    let report = set.clip_grad_norm(0.1, Norm::L2, Nonfinite::Error).unwrap();
    assert!(
        matches!(report.read_blocking(), Err(Error::NonFiniteGradients { total_norm }) if total_norm.is_nan())
    );
    assert_bits_eq(&set.download_grads().unwrap(), &grads, "errored clip");

    // Propagate (PyTorch): every gradient becomes NaN.
    set.clip_grad_norm(0.1, Norm::L2, PROPAGATE).unwrap();
    assert!(set.download_grads().unwrap().iter().all(|g| g.is_nan()));
}

#[test]
fn clip_grad_value_clamps_exactly_and_keeps_nan() {
    for (sizes, slab) in [
        (vec![0, 1, 257, 7919], None),
        (vec![10_007, 64], Some(4096u64)),
    ] {
        let (mut set, mut grads) = set_with_grads(&ctx(), &sizes, slab, 8);
        grads[0] = f32::NAN;
        if grads.len() > 2 {
            grads[1] = f32::INFINITY;
            grads[2] = f32::NEG_INFINITY;
        }
        set.upload_grads(&grads).unwrap();
        set.clip_grad_value(0.25).unwrap();
        let mut want = grads.clone();
        reference::clip_grad_value(&mut [want.as_mut_slice()], 0.25);
        assert_bits_eq(&set.download_grads().unwrap(), &want, "clamped");
    }
}

#[test]
fn clip_results_are_bit_identical_across_runs() {
    let run = || {
        let (mut set, _) = set_with_grads(&ctx(), &[300_007, 5, 4096], Some(256 * 1024), 12);
        set.clip_grad_norm(0.3, Norm::L2, PROPAGATE).unwrap();
        set.download_grads().unwrap()
    };
    assert_bits_eq(&run(), &run(), "clipped gradients");
}

#[test]
fn encode_variants_record_into_the_callers_encoder() {
    let ctx = ctx();
    let (mut set, grads) = set_with_grads(&ctx, &[1000, 24], None, 6);
    let (device, queue) = ctx.device_queue().unwrap();
    let mut encoder = device.create_command_encoder(&Default::default());
    let report = set
        .encode_clip_grad_norm(&mut encoder, 0.5, Norm::L2, Nonfinite::Propagate)
        .unwrap();
    set.encode_clip_grad_value(&mut encoder, 0.01).unwrap();
    queue.submit([encoder.finish()]);
    // The clamp made the norm report stale (it reused the set's workspace).
    assert!(matches!(report.read_blocking(), Err(Error::StaleReport)));
    let mut want = grads.clone();
    reference::clip_grad_norm(&mut [want.as_mut_slice()], 0.5, 2.0);
    reference::clip_grad_value(&mut [want.as_mut_slice()], 0.01);
    let got = set.download_grads().unwrap();
    assert_close(
        &got,
        &want,
        CLIPPED_REL,
        NO_FLOOR,
        "norm clip then value clip",
    );
}

#[test]
fn cpu_fallback_clips_like_the_reference() {
    let cpu = clipstep::Context::cpu();
    let (mut set, grads) = set_with_grads(&cpu, &[10, 20], None, 1);
    let mut want = grads.clone();
    let total = reference::clip_grad_norm(&mut [want.as_mut_slice()], 0.5, 2.0);
    assert_eq!(
        set.clip_grad_norm(0.5, Norm::L2, PROPAGATE)
            .unwrap()
            .read_blocking()
            .unwrap()
            .total_norm,
        total
    );
    assert_eq!(set.download_grads().unwrap(), want);
    set.clip_grad_value(0.01).unwrap();
    reference::clip_grad_value(&mut [want.as_mut_slice()], 0.01);
    assert_eq!(set.download_grads().unwrap(), want);
}

#[test]
fn per_tensor_clip_scales_each_tensor_by_its_own_norm() {
    let sizes = [0, 1, 257, 3000, 20_000, 2048, 9000];
    for (ctx, slab) in [
        (ctx(), None),
        (ctx(), Some(16 * 1024u64)),
        (ctx_small_grid(), None),
        (clipstep::Context::cpu(), None),
    ] {
        let (mut set, mut grads) = set_with_grads(&ctx, &sizes, slab, 13);
        // Scale tensors differently so some are clipped and some are not.
        let mut at = 0;
        for (t, &n) in sizes.iter().enumerate() {
            grads[at..at + n]
                .iter_mut()
                .for_each(|g| *g *= 0.01 * (t as f32 + 1.0).powi(3));
            at += n;
        }
        set.upload_grads(&grads).unwrap();
        let report = set
            .clip_grad_norm_per_tensor(0.5, Norm::L2, PROPAGATE)
            .unwrap();
        let norms = report.tensor_norms_blocking().unwrap();
        let mut want = grads.clone();
        let want_norms =
            reference::clip_grad_norm_per_tensor(&mut split_mut(&mut want, &sizes), 0.5, 2.0);
        assert_close(&norms, &want_norms, NORM_REL, NO_FLOOR, "per-tensor norms");
        let got = set.download_grads().unwrap();
        assert_close(&got, &want, CLIPPED_REL, NO_FLOOR, "per-tensor clipped");
        // Clipped tensors now have norm max_norm (up to eps); the others kept theirs.
        let after = set
            .per_tensor_norms(Norm::L2)
            .unwrap()
            .tensor_norms_blocking()
            .unwrap();
        let bound: Vec<f32> = want_norms.iter().map(|n| n.min(0.5)).collect();
        assert_close(
            &after,
            &bound,
            f64::from(TRAJECTORY_REL),
            1.0,
            "norms after the clip",
        );
    }
}

#[test]
fn clip_grads_with_norm_applies_a_norm_computed_elsewhere() {
    for ctx in [ctx(), clipstep::Context::cpu()] {
        let sizes = [0, 1, 257, 7919, 70_001];
        let (mut set, grads) = set_with_grads(&ctx, &sizes, Some(64 * 1024), 21);
        // The norm and its application compose: global_norm, then clip_grads_with_norm.
        let total = set
            .global_norm(Norm::L2)
            .unwrap()
            .read_blocking()
            .unwrap()
            .total_norm;
        let report = set.clip_grads_with_norm(1.0, total, PROPAGATE).unwrap();
        assert!(report.has_norm());
        let state = report.read_blocking().unwrap();
        assert_eq!(state.total_norm, total);
        assert_eq!(state.clip_coef, reference::clip_coef(total, 1.0));
        // A given norm has no per-tensor norms, on every backend.
        assert!(report.tensor_norms_blocking().unwrap().is_empty());
        let mut want = grads.clone();
        reference::clip_grads_with_norm(&mut split_mut(&mut want, &sizes), 1.0, total);
        assert_bits_eq(
            &set.download_grads().unwrap(),
            &want,
            "clipped with a given norm",
        );
    }
}

#[test]
fn clip_grads_with_norm_treats_a_nonfinite_norm_by_policy() {
    let (mut set, grads) = set_with_grads(&ctx(), &[100, 28], None, 3);
    for total in [f32::NAN, f32::INFINITY] {
        let state = set
            .clip_grads_with_norm(1.0, total, Nonfinite::Skip)
            .unwrap()
            .read_blocking()
            .unwrap();
        assert!(state.nonfinite && state.skipped, "{total}");
        assert_bits_eq(&set.download_grads().unwrap(), &grads, "skipped");
        let report = set
            .clip_grads_with_norm(1.0, total, Nonfinite::Error)
            .unwrap();
        assert!(matches!(
            report.read_blocking(),
            Err(Error::NonFiniteGradients { .. })
        ));
    }
    assert!(matches!(
        set.clip_grads_with_norm(1.0, -1.0, PROPAGATE),
        Err(Error::InvalidTotalNorm(_))
    ));
    assert!(matches!(
        set.clip_grads_with_norm(0.0, 1.0, PROPAGATE),
        Err(Error::InvalidMaxNorm(_))
    ));
    assert_bits_eq(
        &set.download_grads().unwrap(),
        &grads,
        "after the rejected calls",
    );
}
