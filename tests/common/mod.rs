//! Shared test helpers: the device, deterministic data, tolerance checks. Data helpers
//! and the verification checks are the CLI's harness (`clipstep_tools::harness`), so
//! `cargo test` and `clipstep verify` share them.
#![allow(dead_code)]

pub use clipstep_tools::harness;
pub mod steps;

use std::sync::OnceLock;

use clipstep::{
    ArenaOptions, Clip, Context, ContextOptions, Norm, ParamSet, RuleConfig, RuleVisitor,
    StepOptions,
};

/// The adapter the suite runs on. Tests exercise real shaders: with no adapter this
/// fails unless `CLIPSTEP_ALLOW_CPU_TESTS=1` asks for the CPU fallback explicitly.
pub fn ctx() -> Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let allow_cpu = std::env::var("CLIPSTEP_ALLOW_CPU_TESTS").is_ok_and(|v| v == "1");
        let ctx = Context::new().expect("creating the context");
        assert!(
            ctx.is_gpu() || allow_cpu,
            "no GPU adapter: install a Vulkan driver (apt-get install mesa-vulkan-drivers libvulkan1) \
             or set CLIPSTEP_ALLOW_CPU_TESTS=1 to test the CPU fallback"
        );
        eprintln!("clipstep tests on: {}", ctx.describe());
        ctx
    })
    .clone()
}

/// A context whose grids spill into y after 7 workgroups, to reach the 2D-grid path
/// (more than `max_compute_workgroups_per_dimension` workgroups) with small data.
pub fn ctx_small_grid() -> Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::with_options(&ContextOptions {
            max_workgroups_per_dimension: Some(7),
            ..Default::default()
        })
        .expect("creating the context")
    })
    .clone()
}

/// The suite's adapter with the norm partials folded in workgroup memory even where it has
/// subgroups (`ContextOptions::no_subgroups`), so both folds run on one device.
pub fn ctx_no_subgroups() -> Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::with_options(&ContextOptions {
            no_subgroups: true,
            ..Default::default()
        })
        .expect("creating the context")
    })
    .clone()
}

/// Deterministic values in [-scale, scale).
pub fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    harness::sample_data(n, seed, scale)
}

/// A set of `sizes` on `ctx`, slabs capped at `slab_bytes`, gradients from `seed`.
pub fn set_with_grads(
    ctx: &Context, sizes: &[usize], slab_bytes: Option<u64>, seed: u64,
) -> (ParamSet, Vec<f32>) {
    let mut set = ParamSet::new(
        ctx,
        &specs(sizes),
        ArenaOptions {
            max_slab_bytes: slab_bytes,
            ..Default::default()
        },
    )
    .expect("param set");
    let grads = data(sizes.iter().sum(), seed, 1.0);
    set.upload_grads(&grads).unwrap();
    (set, grads)
}

#[allow(unused_imports)]
pub use harness::{norm_tolerance, specs, split, split_mut};

/// `|got - want| <= tol · |want|` (both NaN, or equal infinities, also pass).
pub fn assert_rel(got: f32, want: f32, tol: f64, what: &str) {
    if got.is_nan() && want.is_nan() || got == want {
        return;
    }
    let err = (f64::from(got) - f64::from(want)).abs();
    assert!(
        err <= tol * f64::from(want).abs(),
        "{what}: got {got}, want {want}, relative error {:e} > {tol:e}",
        err / f64::from(want).abs()
    );
}

pub use clipstep::reference::ulps;

/// Each element within `ulps` ulp or `abs` of the reference (NaN matches NaN).
pub fn assert_close_elementwise(got: &[f32], want: &[f32], max_ulps: u32, abs: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok =
            (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= abs || ulps(g, w) <= max_ulps;
        assert!(
            ok,
            "{what}[{i}]: got {g:e}, want {w:e} ({} ulp)",
            ulps(g, w)
        );
    }
}

/// Every element within `tol` relative of the reference, relative to `max(|want|, floor)`
/// (NaN matches NaN).
pub fn assert_close(got: &[f32], want: &[f32], tol: f64, floor: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let (max_abs, max_rel) = harness::max_errors(got, want, floor);
    assert!(
        max_rel <= tol,
        "{what}: max relative error {max_rel:e} (max abs {max_abs:e}) > {tol:e}"
    );
}

/// Every check passed; otherwise the failing rows.
pub fn assert_checks(checks: &[harness::Check]) {
    let failed: Vec<&harness::Check> = checks.iter().filter(|c| !c.pass).collect();
    assert!(
        failed.is_empty(),
        "{} of {} checks failed: {failed:#?}",
        failed.len(),
        checks.len()
    );
}

/// Bit-exact equality.
pub fn assert_bits_eq(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}[{i}]: {x:e} vs {y:e}");
    }
}

/// A buffer of the caller's own on `ctx`'s device, with `usage`.
pub fn user_buffer(ctx: &Context, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device_queue()
        .unwrap()
        .0
        .create_buffer(&wgpu::BufferDescriptor {
            label: Some("user buffer"),
            size,
            usage,
            mapped_at_creation: false,
        })
}

/// A buffer of the caller's own, usable as an external tensor and for uploads/downloads.
pub fn user_storage(ctx: &Context, bytes: u64) -> wgpu::Buffer {
    use wgpu::BufferUsages as U;
    user_buffer(ctx, bytes, U::STORAGE | U::COPY_DST | U::COPY_SRC)
}

/// A set of 100 internal elements (tensor `t0`) and one external tensor `ext` of `numel`
/// elements, its params at `params` and its grads at `grads` (buffer, byte offset).
pub fn set_with_external(
    ctx: &Context, numel: usize, params: (&wgpu::Buffer, u64), grads: (&wgpu::Buffer, u64),
) -> ParamSet {
    let range = |(buffer, offset): (&wgpu::Buffer, u64)| clipstep::BufferRange {
        buffer: buffer.clone(),
        offset,
    };
    let ext = clipstep::ExternalTensor {
        name: "ext".into(),
        shape: vec![numel],
        params: range(params),
        grads: range(grads),
    };
    let options = ArenaOptions {
        external: vec![ext],
        ..Default::default()
    };
    ParamSet::new(ctx, &specs(&[100]), options).unwrap()
}

/// A step clipped by global L2 norm to 1, other options default.
pub fn clipped() -> StepOptions {
    StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    }
}

/// The names of the registered rules ([`clipstep::for_each_rule`]), in its order.
#[allow(dead_code)]
pub fn registered_rules() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl RuleVisitor for Names {
        fn visit<C: RuleConfig>(&mut self) {
            self.0.push(C::NAME);
        }
    }
    let mut names = Names(Vec::new());
    clipstep::for_each_rule(&mut names);
    names.0
}
