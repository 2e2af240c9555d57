//! The case table and checks of `clipstep verify` (the CLI's harness), asserted: every
//! kernel against the CPU reference on the test adapter.

mod common;

use common::harness::{cases, every_rule_on_every_set, mixed, norms_and_clips, optimizers};
use common::*;

/// One at a time: on the GL backend every call holds the one GL context, which wgpu gives
/// up waiting for after 6 s (a case's first steps compile their kernels, Muon's among them).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn every_norm_and_clip_of_the_case_table_matches_the_reference() {
    let _one = serial();
    for case in cases() {
        assert_checks(&norms_and_clips(&ctx(), &case).unwrap());
    }
}

#[test]
fn every_optimizer_of_the_case_table_matches_the_reference() {
    let _one = serial();
    for case in cases() {
        assert_checks(&optimizers(&ctx(), &case).unwrap());
    }
}

/// Every registered rule over a caller's pool and a bf16 set with f32 master weights.
#[test]
fn every_rule_on_a_pool_and_a_bf16_set_matches_the_reference() {
    let _one = serial();
    for case in cases() {
        assert_checks(&every_rule_on_every_set(&ctx(), &case).unwrap());
    }
}

#[test]
fn mixed_precision_on_the_case_table_matches_the_reference() {
    let _one = serial();
    for case in cases() {
        assert_checks(&mixed(&ctx(), &case).unwrap());
    }
}

#[test]
fn the_case_table_on_the_two_dimensional_grid_path() {
    let _one = serial();
    for case in cases() {
        assert_checks(&norms_and_clips(&ctx_small_grid(), &case).unwrap());
    }
}

#[test]
fn a_wrong_result_fails_its_check() {
    // The checks compare against the reference: a perturbed result must fail.
    let (_, rel) = harness::max_errors(&[1.0, 2.0 * (1.0 + 1e-4)], &[1.0, 2.0], f64::MIN_POSITIVE);
    assert!(rel > clipstep::consts::tolerance::NORM_REL);
}

#[test]
fn a_loss_scale_of_2_pow_100_on_f32_gradients_matches_the_reference() {
    let _one = serial();
    for case in cases() {
        assert_checks(&harness::large_loss_scale(&ctx(), &case).unwrap());
    }
}
