//! criterion benches of the same operations as `clipstep bench`, sized to run in a few
//! minutes on a CPU-emulated device (lavapipe): each iteration submits one operation
//! and waits for it.

use clipstep::{
    AdamW, AdamWConfig, Clip, Context, Nonfinite, Norm, Optimizer, ParamSet, StepOptions,
    TensorSpec,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: [usize; 2] = [1 << 16, 1 << 20];

fn set(ctx: &Context, n: usize, tensors: usize) -> ParamSet {
    let specs: Vec<TensorSpec> = (0..tensors)
        .map(|i| {
            TensorSpec::new(
                format!("t{i}"),
                [n / tensors + usize::from(i < n % tensors)],
            )
        })
        .collect();
    let mut set = ctx.param_set(&specs).expect("param set");
    let values: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
    set.upload_params(&values).unwrap();
    set.upload_grads(&values).unwrap();
    set
}

fn benches(c: &mut Criterion) {
    let ctx = Context::new().expect("context");
    let mut group = c.benchmark_group(ctx.describe());
    group.sample_size(10);
    let clip = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    for n in SIZES {
        let mut one = set(&ctx, n, 1);
        group.throughput(Throughput::Bytes(4 * n as u64));
        group.bench_with_input(BenchmarkId::new("global_norm", n), &n, |b, _| {
            b.iter(|| one.global_norm(Norm::L2).unwrap().read_blocking().unwrap())
        });
        group.throughput(Throughput::Bytes(12 * n as u64));
        group.bench_with_input(BenchmarkId::new("clip_grad_norm", n), &n, |b, _| {
            b.iter(|| {
                one.clip_grad_norm(1e9, Norm::L2, Nonfinite::Propagate)
                    .unwrap()
                    .read_blocking()
                    .unwrap()
            })
        });
        group.throughput(Throughput::Bytes(32 * n as u64));
        let mut opt = AdamW::new(&one, AdamWConfig::default()).unwrap();
        group.bench_with_input(BenchmarkId::new("adamw_clip_fused", n), &n, |b, _| {
            b.iter(|| opt.step(&mut one, &clip).unwrap().read_blocking().unwrap())
        });
        let mut many = set(&ctx, n, 2000);
        let mut opt = AdamW::new(&many, AdamWConfig::default()).unwrap();
        group.bench_with_input(
            BenchmarkId::new("adamw_clip_fused_2000_tensors", n),
            &n,
            |b, _| b.iter(|| opt.step(&mut many, &clip).unwrap().read_blocking().unwrap()),
        );
    }
    group.finish();
}

criterion_group!(kernels, benches);
criterion_main!(kernels);
