//! The batched matrix multiply and the Newton–Schulz orthogonalization on the device
//! against their CPU references (`reference::gemm`, `reference::newton_schulz`): awkward
//! shapes (0, 1 × n, n × 1, primes, tall, wide, not a multiple of the 64-wide tile), every
//! transpose, bf16 rounding, more tiles than a grid dimension holds, many products in one
//! dispatch, products deeper than one pass and matrices past a loop's reach on Mesa's
//! software drivers, bit-identical reruns, and the typed errors.

mod common;

use clipstep::linalg::{MatmulBatch, NewtonSchulzBatch};
use clipstep::reference::{gemm, gemm_tolerance, newton_schulz};
use clipstep::*;
use common::*;
use proptest::prelude::*;

/// One at a time: on the GL backend every call holds the one GL context, which wgpu gives
/// up waiting for after 6 s (a first run compiles the kernels).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Operands of `g` from `seed`: `L`, `R` and the starting `C`.
fn operands(g: &Gemm, seed: u64) -> [Vec<f32>; 3] {
    let [l, r, c] = g.lens();
    [
        data(l, seed, 1.0),
        data(r, seed + 1, 1.0),
        data(c, seed + 2, 1.0),
    ]
}

/// Runs `products` as one batch and checks each result against `reference::gemm` within
/// `reference::gemm_tolerance`; returns the results.
fn check_batch(ctx: &Context, products: &[Gemm], seed: u64) -> Vec<Vec<f32>> {
    let batch = MatmulBatch::new(ctx, products).expect("a batch");
    let inputs: Vec<[Vec<f32>; 3]> = products
        .iter()
        .enumerate()
        .map(|(p, g)| operands(g, seed + 10 * p as u64))
        .collect();
    for (p, [l, r, c]) in inputs.iter().enumerate() {
        batch.write(p, l, r, c).unwrap();
    }
    batch.run().unwrap();
    let mut out = Vec::new();
    for (p, (g, [l, r, c])) in products.iter().zip(&inputs).enumerate() {
        let got = batch.read(p).unwrap();
        let want = gemm(g, l, r, c);
        let tol = gemm_tolerance(g, l, r, c);
        assert_eq!(got.len(), want.len(), "product {p} {g:?}");
        for (i, ((&x, &y), &t)) in got.iter().zip(&want).zip(&tol).enumerate() {
            assert!(
                (x - y).abs() <= t,
                "product {p} {g:?} [{i}]: device {x:e}, reference {y:e}, tolerance {t:e}"
            );
        }
        if g.round_bf16 {
            assert!(
                got.iter().all(|x| x.to_bits() & 0xffff == 0),
                "product {p}: every result a bf16"
            );
        }
        out.push(got);
    }
    out
}

fn with(g: Gemm, transpose_left: bool, transpose_right: bool) -> Gemm {
    Gemm {
        transpose_left,
        transpose_right,
        ..g
    }
}

/// Awkward shapes, each with every transpose and with an addend, all in one batch.
#[test]
fn awkward_shapes_match_the_reference() {
    let _one = serial();
    let ctx = ctx();
    let shapes = [
        (1, 1, 1),
        (1, 97, 1),
        (1, 5, 131),
        (131, 5, 1),
        (67, 131, 29),
        (64, 64, 64),
        (65, 17, 129),
        (3, 200, 7),
        (0, 5, 3),
        (4, 0, 6),
        (200, 33, 150),
    ];
    let mut products = Vec::new();
    for (m, k, n) in shapes {
        for (tl, tr) in [(false, false), (true, false), (false, true), (true, true)] {
            products.push(with(Gemm::new(m, k, n), tl, tr));
        }
        products.push(Gemm {
            alpha: -0.75,
            beta: 1.5,
            ..Gemm::new(m, k, n)
        });
    }
    check_batch(&ctx, &products, 1);
}

/// bf16 results: each a bf16, within one bf16 unit of the reference's.
#[test]
fn bf16_rounding_matches_the_reference() {
    let _one = serial();
    let round = |g: Gemm| Gemm {
        round_bf16: true,
        beta: 0.5,
        ..g
    };
    let products = [
        round(Gemm::new(33, 70, 65)),
        round(with(Gemm::new(9, 130, 9), false, true)),
    ];
    check_batch(&ctx(), &products, 7);
}

/// More tiles than a grid dimension holds (a context whose grids spill into y after 7
/// workgroups), and a batch of many small products in one dispatch.
#[test]
fn grids_past_the_dimension_limit_and_many_products() {
    let _one = serial();
    check_batch(&ctx_small_grid(), &[Gemm::new(300, 9, 500)], 3);
    let many: Vec<Gemm> = (0..300)
        .map(|i| Gemm::new(1 + i % 7, 1 + i % 5, 1 + i % 11))
        .collect();
    check_batch(&ctx_small_grid(), &many, 4);
}

/// Products deeper than `GEMM_PASS_DEPTH` (summed in passes, the last rounding; beside a
/// shallow product that one pass holds), a vector's Newton–Schulz whose Gram product sums
/// 100,003 terms in 4 passes, and a matrix of 8.6M elements normalized: Mesa's software
/// drivers stop an invocation's loops after 65,535 turns in all, which once cut each of
/// these short without a word (a sum of 100,003 terms summed 58,254 of them).
#[test]
fn deep_products_and_long_matrices_are_summed_whole() {
    let _one = serial();
    let deep = Gemm {
        beta: 0.5,
        alpha: 2.0,
        ..Gemm::new(2, reference::GEMM_PASS_DEPTH * 3 + 7, 3)
    };
    let bf16 = Gemm {
        round_bf16: true,
        ..with(deep, true, true)
    };
    let batch = [deep, with(deep, false, true), bf16, Gemm::new(5, 9, 4)];
    check_batch(&ctx(), &batch, 11);
    let ns = NewtonSchulz {
        bf16: false,
        ..Default::default()
    };
    for (shape, steps, dispatches) in [((100_003, 1), 5, 31), ((2100, 4100), 0, 1)] {
        let (r, c) = shape;
        let ns = NewtonSchulz { steps, ..ns };
        let g = data(r * c, 3, 1.0);
        let batch = NewtonSchulzBatch::new(&ctx(), &[shape], &ns).unwrap();
        assert_eq!(
            batch.dispatches(),
            dispatches,
            "{shape:?}: 1 + steps·(passes + 2)"
        );
        let got = batch.orthogonalize(&[&g]).unwrap().remove(0);
        let err = worst(&got, &newton_schulz(&g, r, c, &ns));
        assert!(err <= 1e-5, "{shape:?}: {err:e}");
    }
}

/// The same inputs give the same bits, run after run.
#[test]
fn reruns_are_bit_identical() {
    let _one = serial();
    let ctx = ctx();
    let g = with(Gemm::new(70, 300, 90), true, false);
    let a = check_batch(&ctx, &[g], 11);
    let b = check_batch(&ctx, &[g], 11);
    assert_bits_eq(&a[0], &b[0], "rerun");
}

/// Bad input is a typed error that says what to fix.
#[test]
fn bad_input_is_a_typed_error() {
    let _one = serial();
    let ctx = ctx();
    let nan = Gemm {
        alpha: f32::NAN,
        ..Gemm::new(2, 2, 2)
    };
    assert!(matches!(
        MatmulBatch::new(&ctx, &[nan]),
        Err(Error::InvalidMatrices(_))
    ));
    let batch = MatmulBatch::new(&ctx, &[Gemm::new(2, 3, 4)]).unwrap();
    let e = batch
        .write(0, &[0.0; 5], &[0.0; 12], &[0.0; 8])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                expected: 6,
                got: 5,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(batch.read(1), Err(Error::InvalidMatrices(_))));
    let ns = NewtonSchulz {
        steps: 100,
        ..NewtonSchulz::default()
    };
    let e = NewtonSchulzBatch::new(&ctx, &[(2, 2)], &ns)
        .err()
        .expect("refused");
    assert!(
        matches!(
            e,
            Error::InvalidHyperparameter {
                name: "ns_steps",
                ..
            }
        ),
        "{e}"
    );
    let ns = NewtonSchulzBatch::new(&ctx, &[(2, 3)], &NewtonSchulz::default()).unwrap();
    assert!(matches!(
        ns.write(0, &[1.0; 5]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        ns.write(1, &[1.0; 6]),
        Err(Error::InvalidMatrices(_))
    ));
}

/// The largest `|got − want|` relative to the largest `|want|`.
fn worst(got: &[f32], want: &[f32]) -> f32 {
    let scale = want
        .iter()
        .fold(0f32, |m, w| m.max(w.abs()))
        .max(f32::MIN_POSITIVE);
    got.iter()
        .zip(want)
        .fold(0f32, |m, (g, w)| m.max((g - w).abs()))
        / scale
}

/// Newton–Schulz of a batch of tall, wide, square, one-row, one-column and empty matrices,
/// f32 and bf16, against the reference: f32 within 1e-5 of each matrix's largest element
/// (the norm sums in another order; measured on lavapipe: 1.2e-6 at worst, most matrices
/// bit for bit), bf16 within 2⁻⁸ (a flipped bf16 rounding carries through the iterations;
/// measured: bit for bit); reruns give the same bits; `1 + 3·steps` dispatches.
#[test]
fn newton_schulz_matches_the_reference() {
    let _one = serial();
    let ctx = ctx();
    let shapes = [
        (8, 5),
        (5, 8),
        (33, 33),
        (1, 7),
        (7, 1),
        (0, 3),
        (130, 67),
        (2, 300),
    ];
    let inputs: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| data(r * c, 50 + i as u64, 1.0))
        .collect();
    for bf16 in [false, true] {
        let ns = NewtonSchulz {
            bf16,
            ..NewtonSchulz::default()
        };
        let batch = NewtonSchulzBatch::new(&ctx, &shapes, &ns).unwrap();
        assert_eq!(batch.dispatches(), 16);
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let got = batch.orthogonalize(&refs).unwrap();
        let again = batch.orthogonalize(&refs).unwrap();
        for (i, &(r, c)) in shapes.iter().enumerate() {
            let want = newton_schulz(&inputs[i], r, c, &ns);
            let err = worst(&got[i], &want);
            let tol = if bf16 { 2f32.powi(-8) } else { 1e-5 };
            assert!(err <= tol, "{r}x{c} bf16 {bf16}: {err:e}");
            assert_bits_eq(&got[i], &again[i], "rerun");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Random shapes and transposes, one product each, match the reference.
    #[test]
    fn random_products_match(m in 1usize..150, k in 0usize..150, n in 1usize..150,
                             tl: bool, tr: bool, beta in -2f32..2.0, seed in 0u64..1000) {
        let _one = serial();
        let g = Gemm { beta, ..with(Gemm::new(m, k, n), tl, tr) };
        check_batch(&ctx(), &[g], seed);
    }
}
