//! The dynamic loss scale kept on the device: each step's found-inf from the norm pass,
//! the skip, the unscale fused in the update, and the scale's growth and back-off, against
//! the reference rule (itself held to `torch._amp_update_scale_`, src/reference/golden.rs),
//! with no host readback between steps.

mod common;

use clipstep::reference::{self, update_scale, ScaleState};
use clipstep::{
    AdamW, AdamWConfig, ArenaOptions, Dtype, Error, LossScaler, Nonfinite, Optimizer, ParamSet,
    Sgd, SgdConfig, StepOptions,
};
use common::{assert_bits_eq, assert_close_elementwise, ctx, data};

const SIZES: [usize; 4] = [1, 257, 4099, 3];

fn set(dtype: Dtype) -> ParamSet {
    let specs = common::harness::specs(&SIZES);
    let options = ArenaOptions {
        dtype,
        master_weights: dtype.is_16_bit(),
        ..Default::default()
    };
    ParamSet::new(&ctx(), &specs, options).unwrap()
}

/// Which steps overflow: growth, back-off, consecutive overflows.
const OVERFLOWS: [bool; 14] = [
    false, false, false, true, false, true, true, false, false, false, false, false, true, false,
];

/// Scaled gradients (`g · scale`), with an infinity at a step that overflows (f16's
/// overflow comes from the scale itself: 1e6 is past 65504).
fn scaled_grads(n: usize, step: u64, scale: f32, overflow: bool) -> Vec<f32> {
    let mut g: Vec<f32> = data(n, 40 + step, 1.0).iter().map(|x| x * scale).collect();
    if overflow {
        g[n / 2] = 1e6 * f32::MAX;
    }
    g
}

/// Fourteen SGD steps under a scaler: every step's scale, tracker-driven growth and
/// back-off, skip and update against the reference, read only from the reports.
fn scaler_follows_the_reference(dtype: Dtype, hysteresis: u32) {
    let mut set = set(dtype);
    let n: usize = SIZES.iter().sum();
    set.upload_params(&data(n, 1, 1.0)).unwrap();
    let config = SgdConfig {
        lr: 0.1,
        ..Default::default()
    };
    let mut opt = Sgd::new(&set, config).unwrap();
    let scaler = LossScaler {
        init_scale: 1024.0,
        growth_interval: 3,
        hysteresis,
        ..Default::default()
    };
    opt.set_loss_scaler(Some(scaler)).unwrap();
    assert_eq!(opt.loss_scale().unwrap(), 1024.0);
    let mut want = ScaleState {
        scale: 1024.0,
        growth_tracker: 0,
        hysteresis_left: hysteresis,
    };
    let mut steps = 0;
    for (k, &overflow) in OVERFLOWS.iter().enumerate() {
        let what = format!("{dtype:?} hysteresis {hysteresis} step {k}");
        set.upload_grads(&scaled_grads(n, k as u64, want.scale, overflow))
            .unwrap();
        let grads = set.download_grads().unwrap();
        let before = set.download_params().unwrap();
        let state = opt
            .step(&mut set, &StepOptions::default())
            .unwrap()
            .read_blocking()
            .unwrap();
        let after = set.download_params().unwrap();
        assert_eq!(state.nonfinite, overflow, "{what}");
        assert_eq!(state.skipped, overflow, "{what}");
        if overflow {
            assert_bits_eq(&after, &before, &format!("{what}: a skipped step"));
        } else {
            steps += 1;
            // p ← p − lr · g / scale, unscaled by the scale the gradients carried.
            let mut p = before.clone();
            let g: Vec<f32> = grads.iter().map(|&g| g * (1.0 / want.scale)).collect();
            reference::sgd(
                &mut p,
                &g,
                None,
                steps == 1,
                0.1,
                0.0,
                0.0,
                0.0,
                false,
                false,
            );
            assert_close_elementwise(&after, &p, 4, 1e-7, &what);
            let total = reference::global_norm(&[&g], 2.0);
            assert!(
                (state.total_norm - total).abs() <= 1e-5 * total,
                "{what}: unscaled norm"
            );
        }
        want = update_scale(want, overflow, 2.0, 0.5, 3, hysteresis);
        assert_eq!(
            state.loss_scale, want.scale,
            "{what}: the scale for the next step"
        );
        assert_eq!(state.step, steps, "{what}");
    }
    assert_eq!(opt.loss_scale().unwrap(), want.scale);
}

#[test]
fn the_scale_backs_off_on_overflow_and_grows_after_the_interval() {
    for dtype in [Dtype::F16, Dtype::Bf16, Dtype::F32] {
        scaler_follows_the_reference(dtype, 1);
    }
}

#[test]
fn hysteresis_delays_the_back_off() {
    scaler_follows_the_reference(Dtype::F16, 2);
    scaler_follows_the_reference(Dtype::F32, 3);
}

/// The scale is readable on the device where `loss_scale_binding` says, without the
/// report; it can be set by hand, and it survives a checkpoint.
#[test]
fn the_scale_lives_on_the_device_is_settable_and_saved() {
    let ctx = ctx();
    let mut set = set(Dtype::F16);
    let n: usize = SIZES.iter().sum();
    set.upload_params(&data(n, 1, 1.0)).unwrap();
    let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
    opt.set_loss_scaler(Some(LossScaler {
        growth_interval: 2,
        ..Default::default()
    }))
    .unwrap();
    for k in 0..3 {
        set.upload_grads(&scaled_grads(n, k, 1.0, k == 1)).unwrap();
        opt.step(&mut set, &StepOptions::default()).unwrap();
    }
    // 65536, clean, overflow (→ 32768), clean (tracker 1 of 2): 32768.
    let (buffer, offset) = opt.loss_scale_binding().expect("a GPU optimizer");
    let (device, queue) = ctx.device_queue().unwrap();
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, 4);
    queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let on_device = f32::from_le_bytes(
        staging.slice(..).get_mapped_range().unwrap()[..4]
            .try_into()
            .unwrap(),
    );
    assert_eq!(on_device, 32768.0);
    assert_eq!(opt.loss_scale().unwrap(), 32768.0);

    // A checkpoint holds the scaler and its state: a new optimizer continues bit for bit.
    let saved = opt.save().unwrap();
    let mut other_set = set_like(&set);
    let mut other = AdamW::new(&other_set, AdamWConfig::default()).unwrap();
    other.load(&saved).unwrap();
    assert_eq!(other.loss_scaler(), opt.loss_scaler());
    assert_eq!(other.loss_scale().unwrap(), 32768.0);
    for k in 3..6 {
        let g = scaled_grads(n, k, 32768.0, k == 4);
        set.upload_grads(&g).unwrap();
        other_set.upload_grads(&g).unwrap();
        let a = opt
            .step(&mut set, &StepOptions::default())
            .unwrap()
            .read_blocking()
            .unwrap();
        let b = other
            .step(&mut other_set, &StepOptions::default())
            .unwrap()
            .read_blocking()
            .unwrap();
        assert_eq!(a, b, "step {k}");
    }
    assert_bits_eq(
        &set.download_params().unwrap(),
        &other_set.download_params().unwrap(),
        "params",
    );
    assert_eq!(
        set.download_params_bits().unwrap(),
        other_set.download_params_bits().unwrap()
    );

    opt.set_loss_scale(8.0).unwrap();
    assert_eq!(opt.loss_scale().unwrap(), 8.0);
    opt.set_loss_scaler(None).unwrap();
    assert_eq!(opt.loss_scale().unwrap(), 1.0);
    assert!(matches!(
        opt.set_loss_scale(8.0),
        Err(Error::InvalidLossScaler(_))
    ));
}

/// A copy of `set` (same tensors, params and master weights).
fn set_like(set: &ParamSet) -> ParamSet {
    let mut other = self::set(set.tensors()[0].dtype);
    other
        .upload_params(&set.download_params().unwrap())
        .unwrap();
    other
}

#[test]
fn conflicting_options_and_bad_settings_are_typed_errors_that_change_nothing() {
    let mut set = set(Dtype::Bf16);
    let n: usize = SIZES.iter().sum();
    set.upload_params(&data(n, 1, 1.0)).unwrap();
    set.upload_grads(&data(n, 2, 1.0)).unwrap();
    let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
    for bad in [
        LossScaler {
            init_scale: 0.0,
            ..Default::default()
        },
        LossScaler {
            init_scale: f32::INFINITY,
            ..Default::default()
        },
        LossScaler {
            growth_factor: 1.0,
            ..Default::default()
        },
        LossScaler {
            backoff_factor: 1.0,
            ..Default::default()
        },
        LossScaler {
            growth_interval: 0,
            ..Default::default()
        },
        LossScaler {
            hysteresis: 0,
            ..Default::default()
        },
    ] {
        let err = opt.set_loss_scaler(Some(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidLossScaler(_)), "{bad:?}: {err}");
    }
    assert_eq!(opt.loss_scaler(), None);
    opt.set_loss_scaler(Some(LossScaler::default())).unwrap();
    let params = set.download_params().unwrap();
    for options in [
        StepOptions {
            nonfinite: Nonfinite::Propagate,
            ..Default::default()
        },
        StepOptions {
            grad_scale: 2.0,
            ..Default::default()
        },
    ] {
        let err = opt.step(&mut set, &options).unwrap_err();
        assert!(matches!(err, Error::InvalidLossScaler(_)), "{err}");
    }
    assert!(matches!(
        opt.set_loss_scale(-1.0),
        Err(Error::InvalidLossScaler(_))
    ));
    assert_bits_eq(&set.download_params().unwrap(), &params, "params");
    assert_eq!(opt.step_count().unwrap(), 0);
    assert_eq!(opt.loss_scale().unwrap(), 65536.0);
}
