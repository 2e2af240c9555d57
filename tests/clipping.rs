//! Clipping on the device against the CPU reference and the anchors: the norms on awkward
//! sizes and tensor mixes, the standalone clips, adaptive gradient clipping, and the
//! non-finite policies (`ZeroNans`, `skip_above`).

mod common;

mod norms {
    //! GPU norms against the f64 CPU reference, on awkward sizes and tensor mixes.

    use crate::common::*;
    use clipstep::{reference, Norm};

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

    /// A set whose per-tensor fold is at most 8 workgroups folds and finalizes in one
    /// workgroup; one more tensor and it takes a dispatch of its own. Both match the
    /// reference, and the tensors they share get the same bits either way: 2,048 small
    /// tensors (8 fold workgroups) against 2,049 (9), and 7 tensors of more than 4 chunks
    /// (a workgroup each, and one for the small ones) against 8.
    #[test]
    fn folds_in_the_finalize_and_in_their_own_dispatch_give_the_same_bits() {
        let small: Vec<usize> = (0..2049).map(|i| 1 + i % 37).collect();
        let big: Vec<usize> = (0..8).map(|i| 4 * 16_384 + 1 + 4099 * i).collect();
        for sizes in [small, big] {
            let n = sizes.len();
            for sizes in [&sizes[..n - 1], &sizes[..]] {
                check(&ctx(), sizes, None);
            }
            let norms = |sizes: &[usize]| {
                let (mut set, _) = set_with_grads(&ctx(), sizes, None, 5);
                set.global_norm(Norm::L2)
                    .unwrap()
                    .tensor_norms_blocking()
                    .unwrap()
            };
            let (fused, separate) = (norms(&sizes[..n - 1]), norms(&sizes));
            assert_bits_eq(&fused, &separate[..n - 1], &format!("{n} tensors' norms"));
        }
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
}

mod clip {
    //! clip_grad_norm, clip_grads_with_norm, clip_grad_norm_per_tensor and clip_grad_value
    //! against the CPU reference.

    use crate::common::*;
    use clipstep::consts::tolerance::{CLIPPED_REL, NORM_REL, TRAJECTORY_REL};
    use clipstep::{reference, Error, Nonfinite, Norm};

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
}

mod agc {
    //! Adaptive gradient clipping on the device: against timm's (PyTorch's units) and Optax's
    //! numbers, against the CPU backend over many tensors and a million-element unit, and
    //! typed errors.

    use crate::common::*;
    use clipstep::consts::tolerance::{CLIPPED_REL, UPDATE_ULPS};
    use clipstep::*;
    use serde_json::Value;

    fn fixture(file: &str, key: &str) -> Value {
        let text = match file {
            "pytorch" => include_str!("../fixtures/pytorch.json"),
            _ => include_str!("../fixtures/optax.json"),
        };
        serde_json::from_str::<Value>(text).unwrap()[key].clone()
    }

    fn flat(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|t| {
                t.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
            })
            .collect()
    }

    /// The fixture's tensors in a set on `ctx`, clipped under `units`; the gradients after.
    fn clip_case(ctx: &Context, case: &Value, units: Units) -> Vec<f32> {
        let specs: Vec<TensorSpec> = case["shapes"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let shape: Vec<usize> = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                TensorSpec::new(format!("t{i}"), shape)
            })
            .collect();
        let mut set = ctx.param_set(&specs).unwrap();
        set.upload_params(&flat(&case["params"])).unwrap();
        set.upload_grads(&flat(&case["grads"])).unwrap();
        let clipping = case["clipping"].as_f64().unwrap() as f32;
        let eps = case["eps"].as_f64().unwrap() as f32;
        set.clip_adaptive(clipping, eps, units).unwrap();
        set.download_grads().unwrap()
    }

    #[test]
    fn adaptive_clipping_matches_timm_and_optax() {
        let cases = [
            (
                fixture("pytorch", "adaptive_clip_grad"),
                Units::Leading,
                "timm",
            ),
            (
                fixture("optax", "adaptive_grad_clip"),
                Units::Trailing,
                "Optax",
            ),
        ];
        for (case, units, anchor) in cases {
            let gpu = clip_case(&ctx(), &case, units);
            let cpu = clip_case(&Context::cpu(), &case, units);
            let want = flat(&case["clipped"]);
            assert_close_elementwise(&gpu, &want, UPDATE_ULPS, 0.0, &format!("GPU vs {anchor}"));
            assert_close_elementwise(&cpu, &want, UPDATE_ULPS, 0.0, &format!("CPU vs {anchor}"));
        }
    }

    /// 2,000 tensors of assorted shapes (rows, columns, conv kernels, vectors) over several
    /// slabs: the device within the clip tolerance of the CPU backend, under both conventions.
    #[test]
    fn many_tensors_equal_the_cpu_backend() {
        let shapes: [&[usize]; 5] = [&[7], &[3, 5], &[2, 2, 3, 4], &[1, 9], &[4, 1, 3]];
        let specs: Vec<TensorSpec> = (0..2000)
            .map(|i| TensorSpec::new(format!("t{i}"), shapes[i % shapes.len()]))
            .collect();
        let n: usize = specs.iter().map(|s| s.numel() as usize).sum();
        for units in [Units::Leading, Units::Trailing] {
            let mut runs = Vec::new();
            for ctx in [ctx(), Context::cpu()] {
                let options = ArenaOptions {
                    max_slab_bytes: Some(64 * 1024),
                    ..Default::default()
                };
                let mut set = ParamSet::new(&ctx, &specs, options).unwrap();
                set.upload_params(&data(n, 1, 1.0)).unwrap();
                set.upload_grads(&data(n, 2, 0.2)).unwrap();
                set.clip_adaptive(0.1, 1e-3, units).unwrap();
                runs.push(set.download_grads().unwrap());
            }
            let what = format!("{units:?}");
            assert_close(&runs[0], &runs[1], CLIPPED_REL, f64::MIN_POSITIVE, &what);
            assert_ne!(runs[0], data(n, 2, 0.2), "{units:?}: nothing was clipped");
        }
    }

    #[test]
    fn unsupported_layouts_and_bad_options_are_typed_errors() {
        let ctx = ctx();
        // A tensor spanning slabs.
        let options = ArenaOptions {
            max_slab_bytes: Some(4096),
            ..Default::default()
        };
        let mut set = ParamSet::new(&ctx, &specs(&[5000]), options).unwrap();
        let err = set.clip_adaptive(0.1, 1e-3, Units::Leading).unwrap_err();
        assert!(matches!(err, Error::NotSupported(_)), "{err}");
        // A rank Optax does not define.
        for ctx in [ctx.clone(), Context::cpu()] {
            let mut set = ctx.param_set(&[TensorSpec::new("x", [2; 6])]).unwrap();
            let err = set.clip_adaptive(0.1, 1e-3, Units::Trailing).unwrap_err();
            assert!(matches!(err, Error::InvalidShape { .. }), "{err}");
            set.clip_adaptive(0.1, 1e-3, Units::Leading).unwrap();
            for (clipping, eps) in [(0.0, 1e-3), (f32::NAN, 1e-3), (0.1, -1.0)] {
                let err = set
                    .clip_adaptive(clipping, eps, Units::Leading)
                    .unwrap_err();
                assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
            }
        }
    }

    /// One unit of a million elements (a long vector is one unit), its workgroup striding it.
    #[test]
    fn a_long_unit_equals_the_cpu_backend() {
        let n = 1_000_003;
        let mut runs = Vec::new();
        for ctx in [ctx(), Context::cpu()] {
            let mut set = ctx.param_set(&specs(&[n])).unwrap();
            set.upload_params(&data(n, 1, 1e-3)).unwrap();
            set.upload_grads(&data(n, 2, 1.0)).unwrap();
            set.clip_adaptive(0.05, 1e-3, Units::Leading).unwrap();
            runs.push(set.download_grads().unwrap());
        }
        assert_ne!(runs[1], data(n, 2, 1.0), "the CPU backend clipped");
        assert_close(
            &runs[0],
            &runs[1],
            CLIPPED_REL,
            f64::MIN_POSITIVE,
            "GPU vs CPU",
        );
    }
}

mod policies {
    //! `Nonfinite::ZeroNans` (Optax's `zero_nans`) and `StepOptions::skip_above` (Optax's
    //! `skip_large_updates`): held to Optax's own trajectories (`fixtures/optax.json`) on the
    //! device and the CPU backend, and bit for bit to their definitions: a ZeroNans step is the
    //! Skip step of the gradients with their NaNs zeroed, a step skipped for size changes no bit.

    use crate::common::*;
    use clipstep::consts::tolerance::{CLIPPED_REL, NORM_REL, PYTORCH_STEP_ABS, UPDATE_ULPS};
    use clipstep::*;
    use serde_json::Value;

    fn f32s(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32))
            .collect()
    }

    /// The Optax policy case `name`.
    fn optax_case(name: &str) -> Value {
        let text = include_str!("../fixtures/optax.json");
        let f: Value = serde_json::from_str(text).unwrap();
        f["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["policy"] == name)
            .unwrap()
            .clone()
    }

    /// Optax's SGD behind the policy, step by step, on the device and on the CPU backend.
    fn follows_optax(name: &str, options: StepOptions) {
        let case = optax_case(name);
        for ctx in [ctx(), Context::cpu()] {
            let mut set = ctx.param_set(&specs(&[37])).unwrap();
            set.upload_params(&f32s(&case["params"])).unwrap();
            let config = SgdConfig {
                lr: case["lr"].as_f64().unwrap(),
                ..Default::default()
            };
            let mut opt = Sgd::new(&set, config).unwrap();
            for (k, step) in case["steps"].as_array().unwrap().iter().enumerate() {
                set.upload_grads(&f32s(&step["grad"])).unwrap();
                opt.step(&mut set, &options).unwrap();
                let what = format!("{name} step {} on {}", k + 1, ctx.describe());
                let got = set.download_params().unwrap();
                assert_close_elementwise(
                    &got,
                    &f32s(&step["params"]),
                    UPDATE_ULPS,
                    PYTORCH_STEP_ABS,
                    &what,
                );
                // The next step starts from Optax's parameters.
                set.upload_params(&f32s(&step["params"])).unwrap();
            }
        }
    }

    #[test]
    fn zero_nans_follows_optax() {
        follows_optax(
            "zero_nans",
            StepOptions {
                nonfinite: Nonfinite::ZeroNans,
                ..Default::default()
            },
        );
    }

    #[test]
    fn skip_large_updates_follows_optax() {
        let bound = optax_case("skip_large_updates")["skip_above"]
            .as_f64()
            .unwrap() as f32;
        follows_optax(
            "skip_large_updates",
            StepOptions {
                skip_above: Some(bound),
                nonfinite: Nonfinite::Propagate,
                ..Default::default()
            },
        );
    }

    /// `grads` with a NaN every `every` elements (and at both ends).
    fn with_nans(mut grads: Vec<f32>, every: usize) -> Vec<f32> {
        let n = grads.len();
        for k in (0..n).step_by(every).chain([n - 1]) {
            grads[k] = f32::NAN;
        }
        grads
    }

    fn zeroed(grads: &[f32]) -> Vec<f32> {
        grads
            .iter()
            .map(|&g| if g.is_nan() { 0.0 } else { g })
            .collect()
    }

    /// A clipped AdamW step under ZeroNans is, bit for bit, the Skip step of the gradients with
    /// their NaNs zeroed, over several slabs and over 2,000 tensors; the report says NaNs were
    /// seen, but the step was taken.
    #[test]
    fn a_zero_nans_step_is_the_step_of_the_zeroed_gradients() {
        let ctx = ctx();
        let tiny: Vec<usize> = (0..2000).map(|i| 1 + i % 5).collect();
        for (sizes, slab) in [(vec![40_000, 3, 12_345], Some(16 * 1024)), (tiny, None)] {
            let n: usize = sizes.iter().sum();
            let grads = with_nans(data(n, 4, 2.0), 997);
            let mut runs = Vec::new();
            for (g, nonfinite) in [
                (grads.clone(), Nonfinite::ZeroNans),
                (zeroed(&grads), Nonfinite::Skip),
            ] {
                let (mut set, _) = set_with_grads(&ctx, &sizes, slab, 1);
                set.upload_params(&data(n, 2, 1.0)).unwrap();
                let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
                let options = StepOptions {
                    clip: Clip::GlobalNorm {
                        max_norm: 1.0,
                        norm: Norm::L2,
                    },
                    nonfinite,
                    ..Default::default()
                };
                let mut states = Vec::new();
                for _ in 0..2 {
                    set.upload_grads(&g).unwrap();
                    states.push(
                        opt.step(&mut set, &options)
                            .unwrap()
                            .read_blocking()
                            .unwrap(),
                    );
                }
                runs.push((
                    set.download_params().unwrap(),
                    states,
                    opt.states().get("exp_avg").unwrap(),
                ));
            }
            let ((p0, s0, m0), (p1, s1, m1)) = (&runs[0], &runs[1]);
            assert_bits_eq(p0, p1, "params");
            assert_bits_eq(m0, m1, "exp_avg");
            for (a, b) in s0.iter().zip(s1) {
                assert_eq!(a.total_norm.to_bits(), b.total_norm.to_bits());
                assert!(a.nonfinite && !a.skipped && !b.nonfinite, "{a:?}");
            }
            assert_eq!(s0[1].step, 2);
        }
    }

    /// Under ZeroNans an infinity still skips the step, leaving every bit as it was.
    #[test]
    fn zero_nans_skips_on_an_infinity() {
        for ctx in [ctx(), Context::cpu()] {
            let (mut set, _) = set_with_grads(&ctx, &[300, 7], None, 1);
            set.upload_params(&data(307, 2, 1.0)).unwrap();
            let before = set.download_params().unwrap();
            let mut grads = with_nans(data(307, 5, 1.0), 50);
            grads[100] = f32::NEG_INFINITY;
            set.upload_grads(&grads).unwrap();
            let mut opt = Adam::new(&set, AdamConfig::default()).unwrap();
            let options = StepOptions {
                nonfinite: Nonfinite::ZeroNans,
                ..Default::default()
            };
            let state = opt
                .step(&mut set, &options)
                .unwrap()
                .read_blocking()
                .unwrap();
            assert!(state.nonfinite && state.skipped, "{state:?}");
            assert_eq!(opt.states().step_count().unwrap(), 0);
            assert_bits_eq(&set.download_params().unwrap(), &before, "params");
            assert!(opt
                .states()
                .get("exp_avg")
                .unwrap()
                .iter()
                .all(|&m| m == 0.0));
        }
    }

    /// The standalone clips under ZeroNans write 0 for each NaN and equal the clips of the
    /// zeroed gradients, bit for bit, on the device and on the CPU backend.
    #[test]
    fn standalone_clips_zero_the_nans() {
        let sizes = [5000, 1, 64, 777];
        let n: usize = sizes.iter().sum();
        let grads = with_nans(data(n, 6, 3.0), 101);
        for ctx in [ctx(), Context::cpu()] {
            type Clip = fn(&mut ParamSet, Nonfinite) -> StepState;
            let clips: [(&str, Clip); 2] = [
                ("clip_grad_norm", |s, p| {
                    let r = s.clip_grad_norm(1.0, Norm::L2, p).unwrap();
                    r.read_blocking().unwrap()
                }),
                ("per tensor", |s, p| {
                    let r = s.clip_grad_norm_per_tensor(0.5, Norm::L1, p).unwrap();
                    r.read_blocking().unwrap()
                }),
            ];
            for (what, clip) in clips {
                let (mut a, _) = set_with_grads(&ctx, &sizes, Some(8192), 1);
                let (mut b, _) = set_with_grads(&ctx, &sizes, Some(8192), 1);
                a.upload_grads(&grads).unwrap();
                b.upload_grads(&zeroed(&grads)).unwrap();
                let sa = clip(&mut a, Nonfinite::ZeroNans);
                let sb = clip(&mut b, Nonfinite::Skip);
                let what = format!("{what} on {}", ctx.describe());
                assert_bits_eq(
                    &a.download_grads().unwrap(),
                    &b.download_grads().unwrap(),
                    &what,
                );
                assert_eq!(sa.total_norm.to_bits(), sb.total_norm.to_bits(), "{what}");
                assert!(sa.nonfinite && !sa.skipped, "{what}: {sa:?}");
            }
        }
    }

    /// A step whose norm is not below `skip_above` changes no bit (parameters, states, step
    /// count) on the device and on the CPU backend, under every policy, a NaN norm included;
    /// one below it is taken.
    #[test]
    fn steps_above_the_bound_are_skipped() {
        for ctx in [ctx(), Context::cpu()] {
            let (mut set, grads) = set_with_grads(&ctx, &[1000, 37], Some(2048), 1);
            set.upload_params(&data(1037, 2, 1.0)).unwrap();
            let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
            let norm = reference::global_norm(&[&grads], 2.0);
            for nonfinite in [Nonfinite::Skip, Nonfinite::Propagate, Nonfinite::ZeroNans] {
                let options = StepOptions {
                    nonfinite,
                    skip_above: Some(norm),
                    ..Default::default()
                };
                let before = (
                    set.download_params().unwrap(),
                    opt.states().get("exp_avg").unwrap(),
                );
                let state = opt
                    .step(&mut set, &options)
                    .unwrap()
                    .read_blocking()
                    .unwrap();
                assert!(
                    state.skipped && !state.nonfinite,
                    "{nonfinite:?}: {state:?}"
                );
                assert_bits_eq(&set.download_params().unwrap(), &before.0, "params");
                assert_bits_eq(&opt.states().get("exp_avg").unwrap(), &before.1, "exp_avg");
                assert_eq!(opt.states().step_count().unwrap(), 0);
            }
            // A NaN norm skips even under Propagate.
            let mut poisoned = grads.clone();
            poisoned[3] = f32::NAN;
            set.upload_grads(&poisoned).unwrap();
            let options = StepOptions {
                nonfinite: Nonfinite::Propagate,
                skip_above: Some(1e30),
                ..Default::default()
            };
            let state = opt
                .step(&mut set, &options)
                .unwrap()
                .read_blocking()
                .unwrap();
            assert!(state.skipped, "{state:?}");
            set.upload_grads(&grads).unwrap();
            let options = StepOptions {
                skip_above: Some(norm * 1.01),
                ..Default::default()
            };
            let state = opt
                .step(&mut set, &options)
                .unwrap()
                .read_blocking()
                .unwrap();
            assert!(!state.skipped && state.step == 1, "{state:?}");
        }
    }

    #[test]
    fn a_bad_bound_is_a_typed_error() {
        let (mut set, _) = set_with_grads(&ctx(), &[10], None, 1);
        let mut opt = Sgd::new(&set, SgdConfig::default()).unwrap();
        for bound in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let options = StepOptions {
                skip_above: Some(bound),
                ..Default::default()
            };
            let err = opt.step(&mut set, &options).err().unwrap();
            assert!(matches!(err, Error::InvalidSkipBound(_)), "{err}");
        }
        assert_eq!(opt.states().step_count().unwrap(), 0);
    }

    /// `ParamSet::clip_by_block_rms` against Optax's `clip_by_block_rms` and the reference, on
    /// the device and the CPU backend; a bad threshold is a typed error.
    #[test]
    fn clip_by_block_rms_matches_optax() {
        let text = include_str!("../fixtures/optax.json");
        let f: Value = serde_json::from_str(text).unwrap();
        let case = &f["clip_by_block_rms"];
        let grads: Vec<Vec<f32>> = case["grads"].as_array().unwrap().iter().map(f32s).collect();
        let want: Vec<f32> = case["clipped"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(f32s)
            .collect();
        let threshold = case["threshold"].as_f64().unwrap() as f32;
        let sizes: Vec<usize> = grads.iter().map(Vec::len).collect();
        let mut reference = grads.clone();
        let mut views: Vec<&mut [f32]> = reference.iter_mut().map(Vec::as_mut_slice).collect();
        let norms = reference::clip_by_block_rms(&mut views, threshold);
        let reference: Vec<f32> = reference.concat();
        for ctx in [ctx(), Context::cpu()] {
            let mut set = ctx.param_set(&specs(&sizes)).unwrap();
            set.upload_grads(&grads.concat()).unwrap();
            let report = set.clip_by_block_rms(threshold, Nonfinite::Skip).unwrap();
            let what = format!("clip_by_block_rms on {}", ctx.describe());
            let got = set.download_grads().unwrap();
            let ulps = UPDATE_ULPS;
            assert_close_elementwise(&got, &want, ulps, 0.0, &format!("{what} vs Optax"));
            let floor = f64::MIN_POSITIVE;
            let vs_reference = format!("{what} vs reference");
            assert_close(&got, &reference, CLIPPED_REL, floor, &vs_reference);
            let tensor_norms = report.tensor_norms_blocking().unwrap();
            assert_close(
                &tensor_norms,
                &norms,
                NORM_REL,
                floor,
                &format!("{what}: norms"),
            );
            for bad in [0.0, -1.0, f32::NAN] {
                let err = set.clip_by_block_rms(bad, Nonfinite::Skip).err().unwrap();
                assert!(matches!(err, Error::InvalidBlockRms(_)), "{err}");
            }
        }
    }
}
