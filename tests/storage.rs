//! Where tensors live: parameter sets (packing, transfers, views, external buffers) and
//! framework-pooled buffers, each checked bit for bit against clipstep's own slabs.

mod common;

mod arena {
    //! Parameter sets: packing, uploads and downloads, views, external buffers.

    use crate::common::*;
    use clipstep::{
        reference, ArenaOptions, BufferRange, ExternalTensor, Norm, ParamSet, TensorSpec,
    };

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
}

mod pooled {
    //! Framework-pooled buffers: many external tensors sub-allocated in a few caller buffers
    //! (one slab per pool), params and grads in one buffer, gradients rebound every step.
    //! Each is checked bit for bit against the same tensors in clipstep's own slabs (the
    //! addressing changes, the arithmetic must not), against the CPU backend, and for the
    //! bytes between the caller's tensors, which must never change.

    use crate::common::*;
    use clipstep::*;

    /// Every value outside a tensor in the caller's buffers.
    const SENTINEL: f32 = 7777.0;

    /// Awkward sizes: empty, one element, partial vec4s and blocks, primes, more than a chunk.
    const SIZES: [usize; 14] = [0, 1, 3, 4, 5, 63, 64, 65, 127, 1009, 4099, 16_385, 17, 2];

    /// The tensors of the pooled tests: `SIZES` repeated to `n` tensors.
    fn pooled_specs(n: usize) -> Vec<TensorSpec> {
        (0..n)
            .map(|i| TensorSpec::new(format!("p{i}"), [SIZES[i % SIZES.len()]]))
            .collect()
    }

    /// Byte offsets a pool allocator gives `specs` in order: each tensor on the device's
    /// storage alignment, `gap` bytes after the previous one's end; and the bytes used.
    fn suballocate(specs: &[&TensorSpec], align: u64, gap: u64, start: u64) -> (Vec<u64>, u64) {
        let mut at = start;
        let offsets = specs
            .iter()
            .map(|s| {
                let offset = at.next_multiple_of(align);
                at = offset + (s.numel() * 4).next_multiple_of(16) + gap;
                offset
            })
            .collect();
        (offsets, at.next_multiple_of(align))
    }

    /// A caller's buffer of `bytes` filled with the sentinel.
    fn sentinel_buffer(ctx: &Context, bytes: u64) -> wgpu::Buffer {
        let buffer = user_storage(ctx, bytes);
        let (_, queue) = ctx.device_queue().unwrap();
        queue.write_buffer(
            &buffer,
            0,
            bytemuck::cast_slice(&vec![SENTINEL; (bytes / 4) as usize]),
        );
        buffer
    }

    /// The whole of a caller's buffer, read back.
    fn read_buffer(ctx: &Context, buffer: &wgpu::Buffer) -> Vec<f32> {
        let (device, queue) = ctx.device_queue().unwrap();
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("test readback"),
            size: buffer.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
        queue.submit([encoder.finish()]);
        staging.map_async(wgpu::MapMode::Read, .., |r| r.unwrap());
        device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
        let out = bytemuck::cast_slice(&staging.get_mapped_range(..).unwrap()).to_vec();
        out
    }

    /// Where a pooled test put its tensors: per tensor, its params and grads ranges.
    struct Pool {
        specs: Vec<TensorSpec>,
        params: Vec<BufferRange>,
        grads: Vec<BufferRange>,
    }

    impl Pool {
        /// `specs` with params in one buffer (gaps of 32 bytes) and grads in another, laid out
        /// in reverse order with other gaps: a tensor's grads offset has nothing to do with
        /// its params offset.
        fn split(ctx: &Context, specs: Vec<TensorSpec>) -> Pool {
            let align = u64::from(ctx.limits().unwrap().min_storage_buffer_offset_alignment);
            let refs: Vec<&TensorSpec> = specs.iter().collect();
            let (p_at, p_len) = suballocate(&refs, align, 32, align);
            let reversed: Vec<&TensorSpec> = specs.iter().rev().collect();
            let (mut g_at, g_len) = suballocate(&reversed, align, 3 * align, 0);
            g_at.reverse();
            let (p, g) = (sentinel_buffer(ctx, p_len), sentinel_buffer(ctx, g_len));
            Pool::at(specs, &p, &p_at, &g, &g_at)
        }

        /// `specs` with params and grads interleaved in one buffer: p0 g0 p1 g1 ...
        fn shared(ctx: &Context, specs: Vec<TensorSpec>) -> Pool {
            let align = u64::from(ctx.limits().unwrap().min_storage_buffer_offset_alignment);
            let twice: Vec<&TensorSpec> = specs.iter().flat_map(|s| [s, s]).collect();
            let (at, len) = suballocate(&twice, align, 0, 0);
            let b = sentinel_buffer(ctx, len);
            let p_at: Vec<u64> = at.iter().step_by(2).copied().collect();
            let g_at: Vec<u64> = at.iter().skip(1).step_by(2).copied().collect();
            Pool::at(specs, &b, &p_at, &b, &g_at)
        }

        fn at(
            specs: Vec<TensorSpec>, p: &wgpu::Buffer, p_at: &[u64], g: &wgpu::Buffer, g_at: &[u64],
        ) -> Pool {
            let range = |buffer: &wgpu::Buffer, offset: u64| BufferRange {
                buffer: buffer.clone(),
                offset,
            };
            Pool {
                params: p_at.iter().map(|&o| range(p, o)).collect(),
                grads: g_at.iter().map(|&o| range(g, o)).collect(),
                specs,
            }
        }

        fn externals(&self) -> Vec<ExternalTensor> {
            (0..self.specs.len())
                .map(|i| ExternalTensor {
                    name: self.specs[i].name.clone(),
                    shape: self.specs[i].shape.clone(),
                    params: self.params[i].clone(),
                    grads: self.grads[i].clone(),
                })
                .collect()
        }

        /// Every element of the pool's buffers outside its tensors is still the sentinel.
        fn assert_gaps_untouched(&self, ctx: &Context) {
            let mut buffers: Vec<&wgpu::Buffer> = Vec::new();
            for r in self.params.iter().chain(&self.grads) {
                if !buffers.contains(&&r.buffer) {
                    buffers.push(&r.buffer);
                }
            }
            for buffer in buffers {
                let values = read_buffer(ctx, buffer);
                let mut inside = vec![false; values.len()];
                for (i, spec) in self.specs.iter().enumerate() {
                    for r in [&self.params[i], &self.grads[i]] {
                        if r.buffer == *buffer {
                            let at = (r.offset / 4) as usize;
                            inside[at..at + spec.numel() as usize].fill(true);
                        }
                    }
                }
                for (k, (&v, &is)) in values.iter().zip(&inside).enumerate() {
                    assert!(
                        is || v == SENTINEL,
                        "byte {} outside every tensor became {v}",
                        4 * k
                    );
                }
            }
        }
    }

    /// A set of internal tensors `own` plus `pool`'s externals.
    fn pooled_set(ctx: &Context, own: &[TensorSpec], pool: &Pool) -> ParamSet {
        let options = ArenaOptions {
            external: pool.externals(),
            ..Default::default()
        };
        ParamSet::new(ctx, own, options).unwrap()
    }

    /// The same tensors, all in clipstep's own slabs on `ctx`.
    fn own_set(ctx: &Context, own: &[TensorSpec], pool: &Pool) -> ParamSet {
        let all: Vec<TensorSpec> = own.iter().chain(&pool.specs).cloned().collect();
        ctx.param_set(&all).unwrap()
    }

    fn numel(set: &ParamSet) -> usize {
        set.numel() as usize
    }

    const CLIPPED: StepOptions = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        grad_scale: 1.0,
        nonfinite: Nonfinite::Skip,
        skip_above: None,
        total_norm: None,
        rounding: clipstep::Rounding::NearestEven,
    };

    /// Three clipped AdamW steps on `set`, new gradients each step; the parameters after.
    fn adamw_steps(set: &mut ParamSet) -> (Vec<f32>, Vec<f32>) {
        let n = numel(set);
        set.upload_params(&data(n, 1, 1.0)).unwrap();
        let config = AdamWConfig {
            lr: 1e-2,
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::new(set, config).unwrap();
        let mut norms = Vec::new();
        for step in 0..3 {
            set.upload_grads(&data(n, 10 + step, 2.0)).unwrap();
            let report = opt.step(set, &CLIPPED).unwrap();
            norms.push(report.read_blocking().unwrap().total_norm);
        }
        (set.download_params().unwrap(), norms)
    }

    /// 300 tensors in one params pool and one grads pool (one slab for all of them) step
    /// exactly as in clipstep's own slabs, and close to the CPU backend; no byte between
    /// them changes.
    #[test]
    fn a_pool_of_many_tensors_steps_like_own_slabs() {
        let ctx = ctx();
        let own = specs(&[100, 7]);
        let pool = Pool::split(&ctx, pooled_specs(300));
        let mut pooled = pooled_set(&ctx, &own, &pool);
        let own_slabs = own_set(&ctx, &own, &pool).num_slabs();
        assert_eq!(pooled.num_slabs(), 1 + 1, "one internal slab, one pool");
        let (got, got_norms) = adamw_steps(&mut pooled);
        let (want, want_norms) = adamw_steps(&mut own_set(&ctx, &own, &pool));
        assert_eq!(own_slabs, 1);
        assert_bits_eq(&got, &want, "pooled vs own slabs");
        assert_bits_eq(&got_norms, &want_norms, "total norms");
        let (cpu, _) = adamw_steps(&mut own_set(&Context::cpu(), &own, &pool));
        assert_close(
            &got,
            &cpu,
            f64::from(consts::tolerance::TRAJECTORY_REL),
            consts::tolerance::TRAJECTORY_FLOOR,
            "pooled vs CPU",
        );
        pool.assert_gaps_untouched(&ctx);
    }

    /// The upload writes each tensor where the caller put it (read from the caller's buffer
    /// directly), and the set reads it back from there.
    #[test]
    fn uploads_land_at_the_callers_offsets() {
        let ctx = ctx();
        let pool = Pool::split(&ctx, pooled_specs(40));
        let mut set = pooled_set(&ctx, &[], &pool);
        let n = numel(&set);
        let (params, grads) = (data(n, 3, 1.0), data(n, 4, 1.0));
        set.upload_params(&params).unwrap();
        set.upload_grads(&grads).unwrap();
        let raw_p = read_buffer(&ctx, &pool.params[0].buffer);
        let raw_g = read_buffer(&ctx, &pool.grads[0].buffer);
        let mut at = 0;
        for (i, spec) in pool.specs.iter().enumerate() {
            let k = spec.numel() as usize;
            let (p, g) = (
                (pool.params[i].offset / 4) as usize,
                (pool.grads[i].offset / 4) as usize,
            );
            assert_eq!(
                &raw_p[p..p + k],
                &params[at..at + k],
                "params of {}",
                spec.name
            );
            assert_eq!(
                &raw_g[g..g + k],
                &grads[at..at + k],
                "grads of {}",
                spec.name
            );
            assert_eq!(set.download_param(&spec.name).unwrap(), &params[at..at + k]);
            let view = &set.grad_views(&spec.name).unwrap();
            assert!(k == 0 || view[0].offset == pool.grads[i].offset);
            at += k;
        }
        assert_eq!(set.download_grads().unwrap(), grads);
        pool.assert_gaps_untouched(&ctx);
    }

    /// Norms and every standalone clip on a pooled set equal those of own slabs, bit for bit.
    #[test]
    fn norms_and_clips_of_a_pool_equal_own_slabs() {
        let ctx = ctx();
        let pool = Pool::split(&ctx, pooled_specs(60));
        let own = specs(&[33]);
        let mut pooled = pooled_set(&ctx, &own, &pool);
        let mut mine = own_set(&ctx, &own, &pool);
        let grads = data(numel(&mine), 5, 3.0);
        type Op = fn(&mut ParamSet) -> Vec<f32>;
        let ops: [(&str, Op); 5] = [
            ("l1 norm", |s| {
                let report = s.global_norm(Norm::L1).unwrap();
                let mut v = report.tensor_norms_blocking().unwrap();
                v.push(report.read_blocking().unwrap().total_norm);
                v
            }),
            ("clip_grad_norm", |s| {
                s.clip_grad_norm(0.5, Norm::L2, Nonfinite::Propagate)
                    .unwrap();
                s.download_grads().unwrap()
            }),
            ("per tensor", |s| {
                s.clip_grad_norm_per_tensor(0.25, Norm::Inf, Nonfinite::Propagate)
                    .unwrap();
                s.download_grads().unwrap()
            }),
            ("clip value", |s| {
                s.clip_grad_value(0.1).unwrap();
                s.download_grads().unwrap()
            }),
            ("zero_grad", |s| {
                s.zero_grad().unwrap();
                s.download_grads().unwrap()
            }),
        ];
        for (what, op) in ops {
            pooled.upload_grads(&grads).unwrap();
            mine.upload_grads(&grads).unwrap();
            assert_bits_eq(&op(&mut pooled), &op(&mut mine), what);
            pool.assert_gaps_untouched(&ctx);
        }
    }

    /// Every registered rule (its representative example) over a pool, params and grads in
    /// two caller buffers or interleaved in one (bound once, read-write), steps exactly as
    /// over own slabs, parameters and first state bit for bit: the kernels' addressing and
    /// access change, the arithmetic must not (a trust rule's trust pass walks the pool's
    /// chunks in the virtual space and reads through the place table like the update).
    #[test]
    fn every_rule_over_a_pool_steps_like_own_slabs() {
        struct EveryRule(Context);
        impl RuleVisitor for EveryRule {
            fn visit<C: RuleConfig>(&mut self) {
                // A rule of matrices refuses these vectors; its pooled steps: verify's rows.
                if C::MATRICES {
                    return;
                }
                let ctx = &self.0;
                let config = C::examples().remove(0);
                let own = specs(&[100, 7]);
                for (kind, pool) in [
                    ("two buffers", Pool::split(ctx, pooled_specs(60))),
                    ("one buffer", Pool::shared(ctx, pooled_specs(40))),
                ] {
                    let what = format!("{} in {kind}", C::NAME);
                    let mut results = Vec::new();
                    for mut set in [pooled_set(ctx, &own, &pool), own_set(ctx, &own, &pool)] {
                        let n = numel(&set);
                        set.upload_params(&data(n, 6, 1.0)).unwrap();
                        let mut opt = config.build(&set).unwrap();
                        for step in 0..3 {
                            set.upload_grads(&data(n, 20 + step, 1.0)).unwrap();
                            opt.step(&mut set, &CLIPPED).unwrap();
                        }
                        let first = opt.states().names()[0];
                        results.push(set.download_params().unwrap());
                        results.push(opt.states().get(first).unwrap());
                    }
                    assert_bits_eq(&results[0], &results[2], &format!("{what}: params"));
                    assert_bits_eq(&results[1], &results[3], &format!("{what}: state"));
                    pool.assert_gaps_untouched(ctx);
                }
            }
        }
        for_each_rule(&mut EveryRule(ctx()));
    }

    /// Gradients in a new buffer every step (three pools in rotation, each its own layout):
    /// the trajectory is that of own slabs fed the same gradients, and a rerun is bit-identical.
    #[test]
    fn grads_rebound_every_step_follow_own_slabs() {
        let ctx = ctx();
        let specs = pooled_specs(80);
        let run = || {
            let pools: Vec<Pool> = (0..3).map(|_| Pool::split(&ctx, specs.clone())).collect();
            let mut set = pooled_set(&ctx, &[], &pools[0]);
            let n = numel(&set);
            set.upload_params(&data(n, 7, 1.0)).unwrap();
            let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
            for step in 0..7 {
                // The framework's backward pass wrote this step's gradients into a new pool.
                let pool = &pools[step % 3];
                let moves = specs
                    .iter()
                    .zip(&pool.grads)
                    .map(|(s, r)| (s.name.as_str(), r.clone()));
                set.rebind_grads(moves).unwrap();
                set.upload_grads(&data(n, 30 + step as u64, 1.0)).unwrap();
                opt.step(&mut set, &CLIPPED).unwrap();
            }
            for pool in &pools {
                pool.assert_gaps_untouched(&ctx);
            }
            set.download_params().unwrap()
        };
        let first = run();
        assert_bits_eq(&first, &run(), "rerun");
        let pool = Pool::split(&ctx, specs.clone());
        let mut mine = own_set(&ctx, &[], &pool);
        let n = numel(&mine);
        mine.upload_params(&data(n, 7, 1.0)).unwrap();
        let mut opt = AdamW::new(&mine, AdamWConfig::default()).unwrap();
        for step in 0..7 {
            mine.upload_grads(&data(n, 30 + step, 1.0)).unwrap();
            opt.step(&mut mine, &CLIPPED).unwrap();
        }
        assert_bits_eq(
            &first,
            &mine.download_params().unwrap(),
            "rebound vs own slabs",
        );
    }

    /// Parameters and gradients in new buffers every step (a framework's copy-on-write
    /// clone: the values copied over, then rebound), rotating through pools of both kinds
    /// (params and grads apart, and in one buffer): the trajectory is that of own slabs, and
    /// a pool split across parameter buffers is a typed error that changes nothing.
    #[test]
    fn params_rebound_every_step_follow_own_slabs() {
        let ctx = ctx();
        let specs = pooled_specs(60);
        let pools = [
            Pool::split(&ctx, specs.clone()),
            Pool::shared(&ctx, specs.clone()),
            Pool::split(&ctx, specs.clone()),
        ];
        let mut set = pooled_set(&ctx, &[], &pools[0]);
        let n = numel(&set);
        set.upload_params(&data(n, 7, 1.0)).unwrap();
        let mut opt = AdamW::new(&set, AdamWConfig::default()).unwrap();
        for step in 0..8 {
            let values = set.download_params().unwrap();
            let pool = &pools[step % 3];
            let moves = specs
                .iter()
                .zip(pool.params.iter().zip(&pool.grads))
                .map(|(s, (p, g))| (s.name.as_str(), p.clone(), g.clone()));
            set.rebind_externals(moves).unwrap();
            set.upload_params(&values).unwrap();
            set.upload_grads(&data(n, 30 + step as u64, 1.0)).unwrap();
            opt.step(&mut set, &CLIPPED).unwrap();
        }
        let rebound = set.download_params().unwrap();
        for pool in &pools {
            pool.assert_gaps_untouched(&ctx);
        }
        // The last step (7) ran in the shared pool: its buffer holds the parameters.
        let shared = read_buffer(&ctx, &pools[1].params[0].buffer);
        for (spec, at) in specs.iter().zip(&pools[1].params) {
            let start = (at.offset / 4) as usize;
            let len: usize = spec.shape.iter().product();
            assert_bits_eq(
                &shared[start..start + len],
                &set.download_param(&spec.name).unwrap(),
                &spec.name,
            );
        }

        // One tensor's parameters alone in another buffer would split its pool.
        let other = user_storage(&ctx, 1 << 20);
        let lone = BufferRange {
            buffer: other.clone(),
            offset: 0,
        };
        let grads = pools[0].grads[1].clone();
        let err = set
            .rebind_externals([(specs[1].name.as_str(), lone, grads)])
            .unwrap_err();
        assert!(matches!(err, Error::SplitPool(_)), "{err}");
        assert_bits_eq(
            &rebound,
            &set.download_params().unwrap(),
            "after the failed rebind",
        );

        let pool = Pool::split(&ctx, specs.clone());
        let mut mine = own_set(&ctx, &[], &pool);
        mine.upload_params(&data(n, 7, 1.0)).unwrap();
        let mut opt = AdamW::new(&mine, AdamWConfig::default()).unwrap();
        for step in 0..8 {
            mine.upload_grads(&data(n, 30 + step, 1.0)).unwrap();
            opt.step(&mut mine, &CLIPPED).unwrap();
        }
        assert_bits_eq(
            &rebound,
            &mine.download_params().unwrap(),
            "rebound vs own slabs",
        );
    }

    /// A rebind that would break a rule is a typed error and changes nothing: the next step
    /// still reads the gradients where they were.
    #[test]
    fn bad_rebinds_are_typed_errors_and_change_nothing() {
        let ctx = ctx();
        let pool = Pool::split(&ctx, pooled_specs(20));
        let own = specs(&[10]);
        let mut set = pooled_set(&ctx, &own, &pool);
        let n = numel(&set);
        set.upload_grads(&data(n, 8, 1.0)).unwrap();
        let before = set.global_norm(Norm::L2).unwrap().read_blocking().unwrap();
        let other = user_storage(&ctx, 1 << 20);
        let align = u64::from(ctx.limits().unwrap().min_storage_buffer_offset_alignment);
        let at = |buffer: &wgpu::Buffer, offset: u64| BufferRange {
            buffer: buffer.clone(),
            offset,
        };

        let err = set.rebind_grads([("t0", at(&other, 0))]).unwrap_err();
        assert!(
            matches!(err, Error::NotExternal(ref n) if n == "t0"),
            "{err}"
        );

        let err = set.rebind_grads([("p1", at(&other, 0))]).unwrap_err();
        assert!(matches!(err, Error::SplitPool(_)), "{err}");

        // p5 (63 elements) onto p6's gradient.
        let onto = pool.grads[6].clone();
        let err = set.rebind_grads([("p5", onto)]).unwrap_err();
        assert!(matches!(err, Error::OverlappingExternal { .. }), "{err}");

        let err = set
            .rebind_grads([("p3", at(&other, align / 2))])
            .unwrap_err();
        assert!(matches!(err, Error::MisalignedOffset { .. }), "{err}");

        let err = set.rebind_grads([("nope", at(&other, 0))]).unwrap_err();
        assert!(matches!(err, Error::UnknownTensor(_)), "{err}");

        let after = set.global_norm(Norm::L2).unwrap().read_blocking().unwrap();
        assert_bits_eq(
            &[after.total_norm],
            &[before.total_norm],
            "norm after failed rebinds",
        );
        assert_eq!(set.download_grads().unwrap(), data(n, 8, 1.0));

        // The CPU backend has nothing to rebind.
        let mut cpu = Context::cpu().param_set(&own).unwrap();
        let err = cpu.rebind_grads([("t0", at(&other, 0))]).unwrap_err();
        assert!(matches!(err, Error::NeedsGpu(_)), "{err}");
    }

    /// Pools are found per (params buffer, grads buffer): two frameworks' pools and a lone
    /// tensor make three slabs, in the caller's order.
    #[test]
    fn each_pair_of_buffers_is_one_slab() {
        let ctx = ctx();
        let a = Pool::split(&ctx, pooled_specs(10));
        let b = Pool::shared(&ctx, pooled_specs(12));
        let lone = Pool::split(&ctx, specs(&[5000]));
        let mut external: Vec<ExternalTensor> = a.externals();
        for (k, mut e) in b
            .externals()
            .into_iter()
            .chain(lone.externals())
            .enumerate()
        {
            e.name = format!("other{k}");
            external.push(e);
        }
        let set = ParamSet::new(
            &ctx,
            &[],
            ArenaOptions {
                external,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(set.num_slabs(), 3);
    }

    /// Adaptive clipping over pooled tensors (rows, columns, vectors; params and grads apart,
    /// and in one buffer) equals the same tensors in own slabs, bit for bit, under both unit
    /// conventions, and touches no byte between them.
    #[test]
    fn adaptive_clipping_of_a_pool_equals_own_slabs() {
        let ctx = ctx();
        let shapes: [&[usize]; 4] = [&[7], &[3, 17], &[2, 2, 3, 5], &[65, 2]];
        let specs: Vec<TensorSpec> = (0..40)
            .map(|i| TensorSpec::new(format!("a{i}"), shapes[i % shapes.len()]))
            .collect();
        for units in [Units::Leading, Units::Trailing] {
            for pool in [
                Pool::split(&ctx, specs.clone()),
                Pool::shared(&ctx, specs.clone()),
            ] {
                let mut results = Vec::new();
                for mut set in [pooled_set(&ctx, &[], &pool), own_set(&ctx, &[], &pool)] {
                    let n = numel(&set);
                    set.upload_params(&data(n, 1, 1.0)).unwrap();
                    set.upload_grads(&data(n, 2, 0.3)).unwrap();
                    set.clip_adaptive(0.05, 1e-3, units).unwrap();
                    results.push(set.download_grads().unwrap());
                }
                assert_bits_eq(&results[0], &results[1], &format!("{units:?}"));
                pool.assert_gaps_untouched(&ctx);
            }
        }
    }
}

mod large {
    //! A set past 2^31 bytes on lavapipe (whose `max_buffer_size` is 2^31 − 1): its whole
    //! upload and download go through staging buffers of at most 256 MiB, and the norm
    //! reads every slab (issue 31: a 3·2^30-element set failed on an H200 because the
    //! upload's one staging buffer passed the device's limit).

    use crate::common::ctx;
    use clipstep::{reference, Norm, TensorSpec};

    /// Element i of the test's gradients: values in [-0.5, 0.5) made from i alone, so the
    /// check needs no second copy of 2 GiB.
    fn value(i: usize) -> f32 {
        ((i.wrapping_mul(2_654_435_761) >> 7) % 1000) as f32 / 1000.0 - 0.5
    }

    #[test]
    fn a_set_past_2_pow_31_bytes_uploads_reduces_and_downloads_whole() {
        let sizes = [1usize << 29, 7919, 3];
        let n: usize = sizes.iter().sum();
        assert!(n as u64 * 4 > 1 << 31);
        let specs: Vec<TensorSpec> = sizes
            .iter()
            .enumerate()
            .map(|(i, &k)| TensorSpec::new(format!("t{i}"), [k]))
            .collect();
        let mut set = ctx().param_set(&specs).unwrap();
        let grads: Vec<f32> = (0..n).map(value).collect();
        let want = reference::global_norm(&[&grads], 2.0);
        set.upload_grads(&grads).unwrap();
        drop(grads);
        let got = set.global_norm(Norm::L2).unwrap().read_blocking().unwrap();
        let tol = clipstep::consts::tolerance::NORM_REL;
        assert!(
            ((got.total_norm - want) / want).abs() as f64 <= tol,
            "{} vs {want}",
            got.total_norm
        );
        // The last tensors start past 2^31 bytes of the arena.
        let last = set.download_grad("t2").unwrap();
        assert_eq!(last, [value(n - 3), value(n - 2), value(n - 1)]);
        let back = set.download_grads().unwrap();
        assert_eq!(back.len(), n);
        let first_wrong = back.iter().enumerate().position(|(i, &x)| x != value(i));
        assert_eq!(first_wrong, None, "the whole download");
    }
}
