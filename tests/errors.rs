//! Every input error is a typed `clipstep::Error` with a message that says what to fix,
//! and a failed call changes nothing.

mod common;

use clipstep::{
    ArenaOptions, BufferRange, Clip, Context, ContextOptions, Error, ExternalTensor, Nonfinite,
    Norm, ParamSet, TensorSpec,
};
use common::*;

/// An external tensor at `offset` of `buffer` (grads) and of a twin buffer of the same
/// size and usage (params).
fn external(buffer: &wgpu::Buffer, offset: u64, shape: Vec<usize>) -> ArenaOptions {
    let params = user_buffer(&ctx(), buffer.size(), buffer.usage());
    ArenaOptions {
        external: vec![ExternalTensor {
            name: "x".into(),
            shape,
            params: BufferRange {
                buffer: params,
                offset,
            },
            grads: BufferRange {
                buffer: buffer.clone(),
                offset,
            },
        }],
        ..Default::default()
    }
}

#[test]
fn unknown_adapter_name_is_no_adapter() {
    let err = Context::with_options(&ContextOptions {
        adapter_name: Some("no such adapter 42".into()),
        ..Default::default()
    });
    let msg = err.err().expect("error").to_string();
    assert!(
        msg.contains("no such adapter 42") && msg.contains("clipstep devices"),
        "{msg}"
    );
}

#[test]
fn bad_sets_are_rejected() {
    let ctx = ctx();
    assert!(matches!(ctx.param_set(&[]), Err(Error::EmptyParamSet)));
    let dup = [TensorSpec::new("w", [2]), TensorSpec::new("w", [3])];
    assert!(matches!(ctx.param_set(&dup), Err(Error::DuplicateTensorName(n)) if n == "w"));
    let small = ArenaOptions {
        max_slab_bytes: Some(100),
        ..Default::default()
    };
    assert!(matches!(
        ParamSet::new(&ctx, &specs(&[4]), small),
        Err(Error::SlabTooSmall(100))
    ));
}

#[test]
fn wrong_lengths_and_names_change_nothing() {
    let (mut set, grads) = set_with_grads(&ctx(), &[10, 20], None, 1);
    let err = set.upload_grads(&[1.0; 29]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LengthMismatch {
                expected: 30,
                got: 29,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("expected 30 elements, got 29"));
    assert!(matches!(
        set.upload_grad("t1", &[0.0; 3]),
        Err(Error::LengthMismatch {
            expected: 20,
            got: 3,
            ..
        })
    ));
    assert!(
        matches!(set.upload_param("nope", &[0.0]), Err(Error::UnknownTensor(n)) if n == "nope")
    );
    assert!(matches!(
        set.download_grad("nope"),
        Err(Error::UnknownTensor(_))
    ));
    assert_bits_eq(&set.download_grads().unwrap(), &grads, "after failed calls");
}

#[test]
fn bad_clip_options_are_rejected_before_touching_gradients() {
    let (mut set, grads) = set_with_grads(&ctx(), &[10], None, 2);
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            set.clip_grad_norm(bad, Norm::L2, Nonfinite::Propagate),
            Err(Error::InvalidMaxNorm(_))
        ));
        assert!(matches!(
            set.clip_grad_value(bad),
            Err(Error::InvalidClipValue(_))
        ));
    }
    for p in [0.0, -2.0, f32::NAN, f32::INFINITY] {
        let err = set.global_norm(Norm::P(p)).err().unwrap();
        assert!(matches!(err, Error::InvalidNormOrder(_)), "{err}");
        assert!(err.to_string().contains("Norm::Inf"));
        assert!(matches!(
            set.clip_grad_norm(1.0, Norm::P(p), Nonfinite::Propagate),
            Err(Error::InvalidNormOrder(_))
        ));
    }
    assert!(matches!(
        Clip::GlobalNorm {
            max_norm: -1.0,
            norm: Norm::L2
        }
        .validate(),
        Err(Error::InvalidMaxNorm(_))
    ));
    assert!(matches!(
        Clip::NormThenValue {
            max_norm: 1.0,
            norm: Norm::L2,
            clip_value: 0.0
        }
        .validate(),
        Err(Error::InvalidClipValue(_))
    ));
    assert_bits_eq(
        &set.download_grads().unwrap(),
        &grads,
        "after rejected clips",
    );
}

#[test]
fn bad_external_buffers_are_rejected() {
    let ctx = ctx();
    use wgpu::BufferUsages as U;
    let no_storage = user_buffer(&ctx, 1024, U::COPY_DST);
    let err = ParamSet::new(&ctx, &specs(&[1]), external(&no_storage, 0, vec![4]))
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            Error::MissingUsage {
                usage: "STORAGE",
                ..
            }
        ),
        "{err}"
    );

    let ok = user_buffer(&ctx, 1024, U::STORAGE);
    let aliased = ArenaOptions {
        external: vec![ExternalTensor {
            name: "x".into(),
            shape: vec![4],
            params: BufferRange {
                buffer: ok.clone(),
                offset: 0,
            },
            grads: BufferRange {
                buffer: ok.clone(),
                offset: 512,
            },
        }],
        ..Default::default()
    };
    // Params and grads in one buffer, at separate bytes, are a pool of their own.
    let shared = ParamSet::new(&ctx, &specs(&[1]), aliased).unwrap();
    assert_eq!(shared.num_slabs(), 2);

    let align = ctx.limits().unwrap().min_storage_buffer_offset_alignment;
    let err = ParamSet::new(&ctx, &specs(&[1]), external(&ok, 4, vec![4]))
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::MisalignedOffset { offset: 4, alignment, .. } if alignment == align),
        "{err}"
    );

    let err = ParamSet::new(&ctx, &specs(&[1]), external(&ok, 0, vec![300]))
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                end: 1200,
                size: 1024,
                ..
            }
        ),
        "{err}"
    );

    let err = ParamSet::new(&ctx, &specs(&[1]), external(&ok, 0, vec![1 << 20, 1 << 20]))
        .err()
        .unwrap();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");

    // Registered without COPY_DST/COPY_SRC: kernels work, uploads and downloads say why not.
    let mut set = ParamSet::new(&ctx, &specs(&[1]), external(&ok, 0, vec![4])).unwrap();
    assert!(matches!(
        set.upload_grads(&[0.0; 5]),
        Err(Error::MissingUsage {
            usage: "COPY_DST",
            ..
        })
    ));
    assert!(matches!(
        set.download_grads(),
        Err(Error::MissingUsage {
            usage: "COPY_SRC",
            ..
        })
    ));
    set.global_norm(Norm::L2).unwrap().read_blocking().unwrap();
}

#[test]
fn cpu_context_refuses_gpu_only_calls() {
    let cpu = Context::cpu();
    let (mut set, _) = set_with_grads(&cpu, &[3], None, 1);
    let ctx = ctx();
    let (device, _) = ctx.device_queue().unwrap();
    let mut encoder = device.create_command_encoder(&Default::default());
    assert!(matches!(
        set.encode_global_norm(&mut encoder, Norm::L2),
        Err(Error::NeedsGpu(_))
    ));
    let buffer = user_buffer(&ctx, 256, wgpu::BufferUsages::STORAGE);
    assert!(matches!(
        ParamSet::new(&cpu, &specs(&[1]), external(&buffer, 0, vec![1])),
        Err(Error::NeedsGpu(_))
    ));
}

#[test]
fn reading_a_report_after_a_newer_operation_is_stale() {
    let (mut set, _) = set_with_grads(&ctx(), &[10], None, 3);
    let first = set.global_norm(Norm::L2).unwrap();
    let second = set.global_norm(Norm::L1).unwrap();
    assert!(matches!(first.read_blocking(), Err(Error::StaleReport)));
    second.read_blocking().unwrap();
}

#[test]
fn error_policy_reports_nonfinite_on_read() {
    let (mut set, _) = set_with_grads(&ctx(), &[3], None, 4);
    set.upload_grads(&[1.0, f32::INFINITY, 0.0]).unwrap();
    let report = set.clip_grad_norm(1.0, Norm::L2, Nonfinite::Error).unwrap();
    let err = report.read_blocking().unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteGradients { total_norm } if total_norm == f32::INFINITY),
        "{err}"
    );
    assert_eq!(set.download_grads().unwrap()[0], 1.0);
}

#[test]
fn a_lost_device_is_a_typed_error_not_a_panic() {
    // A context of its own: the shared one must survive this test.
    let ctx = Context::new().unwrap();
    let (mut set, _) = set_with_grads(&ctx, &[1000], None, 5);
    ctx.device_queue().unwrap().0.destroy();
    let err = set
        .global_norm(Norm::L2)
        .and_then(|r| r.read_blocking())
        .unwrap_err();
    assert!(
        matches!(err, Error::Device(_) | Error::Readback(_)),
        "{err}"
    );
    assert!(
        err.to_string().contains("GPU") || err.to_string().contains("device"),
        "{err}"
    );
}
