//! GPU norms against the f64 CPU reference, on awkward sizes and tensor mixes.

mod common;

use clipstep::{reference, Norm};
use common::*;

const NORMS: [Norm; 5] = [Norm::L1, Norm::L2, Norm::Inf, Norm::P(3.0), Norm::P(0.5)];

/// Global and per-tensor norms of `sizes` on `ctx` match the reference for every norm type.
fn check(ctx: &clipstep::Context, sizes: &[usize], slab_bytes: Option<u64>) {
    let (mut set, grads) = set_with_grads(ctx, sizes, slab_bytes, sizes.len() as u64);
    let tensors = split(&grads, sizes);
    for norm in NORMS {
        let report = set.global_norm(norm).unwrap();
        let state = report.read_blocking().unwrap();
        let what = format!(
            "{norm:?} over {} tensors ({} slabs)",
            sizes.len(),
            set.num_slabs()
        );
        assert_rel(
            state.total_norm,
            reference::global_norm(&tensors, norm.order()),
            norm_tolerance(norm),
            &what,
        );
        assert!(!state.nonfinite, "{what}: finite input flagged");
        let per_tensor = report.tensor_norms_blocking().unwrap();
        let want = reference::per_tensor_norms(&tensors, norm.order());
        for (t, (&g, &w)) in per_tensor.iter().zip(&want).enumerate() {
            assert_rel(g, w, norm_tolerance(norm), &format!("{what}, tensor {t}"));
        }
    }
}

#[test]
fn single_tensor_awkward_sizes_match_reference() {
    for n in [0, 1, 255, 256, 257, 4095, 4097, 7919, 1_000_003] {
        check(&ctx(), &[n], None);
    }
}

#[test]
fn more_than_65535_workgroups_of_elements() {
    // 65535 × 256 + 1 elements: past one grid dimension for a workgroup per 256 elements.
    check(&ctx(), &[65535 * 256 + 1], None);
}

#[test]
fn two_dimensional_grids_match_reference() {
    // A grid capped at 7 workgroups per dimension: every dispatch here is 2D.
    check(&ctx_small_grid(), &[100_003, 7, 4096 * 9 + 3], None);
    check(&ctx_small_grid(), &vec![3; 50], Some(1024));
}

#[test]
fn two_thousand_tiny_tensors_match_reference() {
    let sizes: Vec<usize> = (0..2000).map(|i| 1 + i % 13).collect();
    check(&ctx(), &sizes, None);
}

#[test]
fn mixed_tensors_across_many_slabs_match_reference() {
    let sizes = [4096 * 3 + 1, 0, 1, 257, 70_001, 64, 63, 12_345];
    // 16 KiB slabs: the large tensors span several slabs.
    check(&ctx(), &sizes, Some(16 * 1024));
    check(&ctx(), &sizes, None);
}

#[test]
fn nan_and_inf_raise_the_flag_and_propagate() {
    let sizes = [1000, 5000, 300];
    for (bad, want_nan) in [
        (f32::NAN, true),
        (f32::INFINITY, false),
        (f32::NEG_INFINITY, false),
    ] {
        let (mut set, mut grads) = set_with_grads(&ctx(), &sizes, Some(8192), 7);
        grads[1000 + 4321] = bad;
        set.upload_grads(&grads).unwrap();
        for norm in NORMS {
            let report = set.global_norm(norm).unwrap();
            let state = report.read_blocking().unwrap();
            assert!(state.nonfinite, "{bad} under {norm:?} not flagged");
            assert_eq!(
                state.total_norm.is_nan(),
                want_nan,
                "{bad} under {norm:?}: {}",
                state.total_norm
            );
            assert!(!state.total_norm.is_finite());
            let per_tensor = report.tensor_norms_blocking().unwrap();
            assert!(per_tensor[0].is_finite() && per_tensor[2].is_finite());
            assert!(!per_tensor[1].is_finite());
        }
    }
}

#[test]
fn overflowing_norm_is_flagged_nonfinite() {
    let (mut set, _) = set_with_grads(&ctx(), &[4], None, 1);
    set.upload_grads(&[3e38, 3e38, 1.0, 1.0]).unwrap();
    let state = set.global_norm(Norm::L2).unwrap().read_blocking().unwrap();
    assert_eq!(state.total_norm, f32::INFINITY);
    assert!(state.nonfinite);
}

#[test]
fn two_runs_give_identical_bits() {
    let sizes = [1_000_003, 17, 4096];
    let (mut set, _) = set_with_grads(&ctx(), &sizes, Some(1 << 20), 3);
    for norm in NORMS {
        let a = set.global_norm(norm).unwrap();
        let (sa, ta) = (
            a.read_blocking().unwrap(),
            a.tensor_norms_blocking().unwrap(),
        );
        let b = set.global_norm(norm).unwrap();
        let (sb, tb) = (
            b.read_blocking().unwrap(),
            b.tensor_norms_blocking().unwrap(),
        );
        assert_eq!(sa.total_norm.to_bits(), sb.total_norm.to_bits(), "{norm:?}");
        assert_bits_eq(&ta, &tb, "per-tensor norms");
    }
}

#[test]
fn cpu_fallback_matches_reference() {
    let cpu = clipstep::Context::cpu();
    let sizes = [0, 1, 257, 5000];
    let (mut set, grads) = set_with_grads(&cpu, &sizes, None, 11);
    let tensors = split(&grads, &sizes);
    for norm in NORMS {
        let total = set
            .global_norm(norm)
            .unwrap()
            .read_blocking()
            .unwrap()
            .total_norm;
        assert_eq!(total, reference::global_norm(&tensors, norm.order()));
        assert_eq!(
            set.per_tensor_norms(norm)
                .unwrap()
                .tensor_norms_blocking()
                .unwrap(),
            reference::per_tensor_norms(&tensors, norm.order())
        );
    }
}

#[test]
fn every_chunk_size_class_matches_reference() {
    // Small (≤ 2048: 8 invocations each), mid (< 16,384: 64 each) and whole-workgroup
    // chunks (16,384), many of each, interleaved, so class boundaries fall inside workgroups.
    let sizes: Vec<usize> = (0..300)
        .map(|i| [3, 3000, 20_000, 2048, 2049, 8192, 8193, 16_383, 16_385][i % 9])
        .collect();
    check(&ctx(), &sizes, None);
    check(&ctx_small_grid(), &sizes, Some(1 << 20));
}

#[test]
fn chunk_counts_at_every_class_boundary_match_reference() {
    // Each partial has one writer by construction (layout's `partials_rows` twin is tested
    // over these counts); here the shader itself, on a 1D and a 7-wide 2D grid: whole
    // chunks of 16,384 (own workgroup), mid chunks of 3,000 (4 to a workgroup) and small
    // ones of 100 (32 to a workgroup), interleaved, in counts on and next to a workgroup's
    // worth of each class.
    for big in [0, 1] {
        for mid in [3, 4, 5, 8, 9] {
            for small in [31, 32, 33, 65] {
                let mut sizes = Vec::new();
                for i in 0..big.max(mid).max(small) {
                    sizes.extend((i < big).then_some(16_384));
                    sizes.extend((i < mid).then_some(3000));
                    sizes.extend((i < small).then_some(100));
                }
                check(&ctx(), &sizes, None);
                check(&ctx_small_grid(), &sizes, None);
            }
        }
    }
}

#[test]
fn grid_shape_does_not_change_the_bits() {
    // Each chunk is reduced by exactly one fixed group of invocations, whatever the grid's
    // 2D shape: a 1D and a 7-wide grid give identical bits for every per-tensor norm.
    let sizes: Vec<usize> = (0..300)
        .map(|i| [3, 3000, 20_000, 2048, 2049, 8192, 8193, 16_383, 16_385][i % 9])
        .collect();
    let run = |ctx: &clipstep::Context| {
        let (mut set, _) = set_with_grads(ctx, &sizes, None, 21);
        set.global_norm(Norm::L2)
            .unwrap()
            .tensor_norms_blocking()
            .unwrap()
    };
    assert_bits_eq(&run(&ctx()), &run(&ctx_small_grid()), "per-tensor norms");
}

/// Where the device has subgroups of a fixed size (lavapipe: 8) the partials fold with
/// them; the workgroup-memory fold stays for GL and variable-size devices. Both match the
/// reference over every chunk class, each repeats bit for bit, and they agree to a few ulps
/// (they add in different orders). On a device without subgroups both contexts take the
/// same path.
#[test]
fn subgroup_and_workgroup_folds_both_match_reference() {
    let sizes: Vec<usize> = (0..120)
        .map(|i| [3, 3000, 20_000, 2048, 2049, 8192, 8193, 16_383, 100][i % 9])
        .collect();
    let with = ctx();
    let without = ctx_no_subgroups();
    assert_eq!(without.subgroup_size(), None);
    eprintln!("subgroup fold on this device: {:?}", with.subgroup_size());
    for ctx in [&with, &without] {
        check(ctx, &sizes, None);
        check(ctx, &[16_384 * 3 + 5], Some(1 << 16));
    }
    for norm in NORMS {
        let run = |ctx: &clipstep::Context| {
            let (mut set, _) = set_with_grads(ctx, &sizes, None, 5);
            let report = set.global_norm(norm).unwrap();
            (
                report.read_blocking().unwrap().total_norm,
                report.tensor_norms_blocking().unwrap(),
            )
        };
        let (a, ta) = run(&with);
        let (b, tb) = run(&without);
        assert_eq!(
            run(&with).0.to_bits(),
            a.to_bits(),
            "{norm:?}: subgroup fold repeats"
        );
        assert_eq!(
            run(&without).0.to_bits(),
            b.to_bits(),
            "{norm:?}: shared fold repeats"
        );
        assert_rel(
            a,
            b,
            norm_tolerance(norm),
            &format!("{norm:?}: the two folds"),
        );
        for (t, (x, y)) in ta.iter().zip(&tb).enumerate() {
            assert_rel(
                *x,
                *y,
                norm_tolerance(norm),
                &format!("{norm:?}, tensor {t}"),
            );
        }
    }
}
