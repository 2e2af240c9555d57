//! Parameter sets: packing, uploads and downloads, views, external buffers.

mod common;

use clipstep::{reference, ArenaOptions, BufferRange, ExternalTensor, Norm, ParamSet, TensorSpec};
use common::*;

#[test]
fn whole_set_and_single_tensor_round_trips_are_exact() {
    for slab in [None, Some(4096u64)] {
        let sizes = [0, 1, 257, 5000, 64];
        let mut set = ParamSet::new(
            &ctx(),
            &specs(&sizes),
            ArenaOptions {
                max_slab_bytes: slab,
                ..Default::default()
            },
        )
        .unwrap();
        let params = data(sizes.iter().sum(), 1, 3.0);
        set.upload_params(&params).unwrap();
        assert_bits_eq(&set.download_params().unwrap(), &params, "params");
        let fresh = data(5000, 2, 1.0);
        set.upload_param("t3", &fresh).unwrap();
        assert_bits_eq(&set.download_param("t3").unwrap(), &fresh, "one tensor");
        // Neighbours are untouched.
        assert_bits_eq(
            &set.download_param("t2").unwrap(),
            &params[1..258],
            "neighbour",
        );
        assert_eq!(
            set.download_grads().unwrap(),
            vec![0.0; 5322],
            "gradients start at zero"
        );
    }
}

#[test]
fn tensors_larger_than_a_slab_span_slabs() {
    let mut set = ParamSet::new(
        &ctx(),
        &specs(&[10_000, 3]),
        ArenaOptions {
            max_slab_bytes: Some(8192),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(set.num_slabs(), 5);
    let views = set.grad_views("t0").unwrap();
    assert_eq!(views.len(), 5);
    assert_eq!(views.iter().map(|v| v.len).sum::<u64>(), 10_000);
    let g = data(10_003, 3, 1.0);
    set.upload_grads(&g).unwrap();
    assert_bits_eq(
        &set.download_grad("t0").unwrap(),
        &g[..10_000],
        "spanning tensor",
    );
}

#[test]
fn views_are_256_byte_aligned_and_writable_by_the_caller() {
    let ctx = ctx();
    let mut set = ctx.param_set(&specs(&[3, 70, 1])).unwrap();
    let (_, queue) = ctx.device_queue().unwrap();
    for name in ["t0", "t1", "t2"] {
        for v in set.grad_views(name).unwrap() {
            assert_eq!(v.offset % 256, 0, "{name}");
        }
    }
    let view = set.grad_views("t1").unwrap()[0];
    let values = data(70, 4, 1.0);
    queue.write_buffer(view.buffer, view.offset, bytemuck::cast_slice(&values));
    assert_bits_eq(
        &set.download_grad("t1").unwrap(),
        &values,
        "written through a view",
    );
    set.zero_grad().unwrap();
    assert!(set.download_grads().unwrap().iter().all(|&g| g == 0.0));
}

#[test]
fn external_tensors_join_norms_and_clips() {
    let ctx = ctx();
    let (_, queue) = ctx.device_queue().unwrap();
    let shared = user_storage(&ctx, 4096);
    let own_params = user_storage(&ctx, 4096);
    let sentinel = vec![7.0f32; 1024];
    queue.write_buffer(&shared, 0, bytemuck::cast_slice(&sentinel));
    // 37 elements at byte 256 of the caller's buffer; its params in another buffer.
    let mut set = set_with_external(&ctx, 37, (&own_params, 2048), (&shared, 256));
    assert_eq!(set.num_slabs(), 2);
    let grads = data(137, 5, 1.0);
    set.upload_grads(&grads).unwrap();
    let want = reference::global_norm(&[&grads], 2.0);
    let state = set
        .clip_grad_norm(0.5, Norm::L2, clipstep::Nonfinite::Propagate)
        .unwrap()
        .read_blocking()
        .unwrap();
    assert_rel(
        state.total_norm,
        want,
        clipstep::consts::tolerance::NORM_REL,
        "norm with an external tensor",
    );
    let clipped = set.download_grad("ext").unwrap();
    for (c, g) in clipped.iter().zip(&grads[100..]) {
        assert_eq!(*c, g * state.clip_coef);
    }
    // Bytes of the caller's buffer outside the registered range are untouched.
    let mut readback = ParamSet::new(
        &ctx,
        &specs(&[1]),
        ArenaOptions {
            external: vec![ExternalTensor {
                name: "tail".into(),
                shape: vec![64],
                params: BufferRange {
                    buffer: own_params.clone(),
                    offset: 512,
                },
                grads: BufferRange {
                    buffer: shared.clone(),
                    offset: 512,
                },
            }],
            ..Default::default()
        },
    )
    .unwrap();
    let tail = readback.download_grad("tail").unwrap();
    assert!(
        tail.iter().all(|&x| x == 7.0),
        "bytes past the external range changed"
    );
    readback.zero_grad().unwrap();
}

#[test]
fn cpu_sets_round_trip() {
    let cpu = clipstep::Context::cpu();
    let mut set = cpu
        .param_set(&[TensorSpec::new("a", [2, 3]), TensorSpec::new("b", [])])
        .unwrap();
    assert_eq!(set.numel(), 7);
    set.upload_params(&[1., 2., 3., 4., 5., 6., 7.]).unwrap();
    assert_eq!(set.download_param("b").unwrap(), vec![7.0]);
    assert!(set.grad_views("a").is_err());
}
