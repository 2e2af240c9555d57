//! The sharded global norm in one process: "ranks" are parameter sets of their own (one with
//! its own Context), the all-gather is a Vec of encoded partials. The two-phase path over
//! N ranks must give the bits of the same path over one rank; the one-pass step agrees to
//! f32 tolerance; one rank's NaN skips every rank; a replicated tensor counts once.
//! `examples/sharded_mpi.rs` runs the same over real MPI ranks (`.ci/run`).

mod common;

use clipstep::consts::tolerance::{
    CLIPPED_REL, CROSS_PATH_NORM_REL, TRAJECTORY_FLOOR, TRAJECTORY_REL,
};
use clipstep::shard::{combine, ShardPartial, PARTIAL_WORDS};
use clipstep::*;
use common::*;

/// The model: names and sizes, awkward ones (1, a prime, not a multiple of the workgroup
/// size, a tensor over many chunks, an empty one).
const MODEL: [(&str, usize); 7] = [
    ("embed", 70_001),
    ("w1", 4099),
    ("b1", 1),
    ("w2", 1000),
    ("empty", 0),
    ("b2", 257),
    ("head", 20_000),
];

/// A tensor's gradient at `step`: a function of its name and the step, so a rank holding
/// it and one process holding everything see the same values.
fn grad_of(name: &str, n: usize, step: u64) -> Vec<f32> {
    let seed = name.bytes().fold(step * 131, |h, b| h * 31 + u64::from(b));
    data(n, seed, 1.5)
}

fn param_of(name: &str, n: usize) -> Vec<f32> {
    grad_of(name, n, 9_999)
}

/// One rank: a set of `names` (slabs capped at `slab_bytes`) with params and an optimizer
/// whose `replicated` tensors form a replicated group.
struct Rank {
    names: Vec<&'static str>,
    set: ParamSet,
    opt: AdamW,
}

fn rank(
    ctx: &Context, names: &[&'static str], replicated: &[&str], slab_bytes: Option<u64>,
) -> Rank {
    let size = |name: &str| MODEL.iter().find(|m| m.0 == name).unwrap().1;
    let specs: Vec<TensorSpec> = names
        .iter()
        .map(|&n| TensorSpec::new(n, [size(n)]))
        .collect();
    let options = ArenaOptions {
        max_slab_bytes: slab_bytes,
        ..Default::default()
    };
    let mut set = ParamSet::new(ctx, &specs, options).unwrap();
    for &n in names {
        set.upload_param(n, &param_of(n, size(n))).unwrap();
    }
    let config = AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.1,
        ..Default::default()
    };
    let (rep, own): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| replicated.contains(n));
    let mut groups = vec![ParamGroup::new(own, config)];
    if !rep.is_empty() {
        groups.push(ParamGroup::new(rep, config).replicated());
    }
    let opt = AdamW::with_groups(&set, groups).unwrap();
    Rank {
        names: names.to_vec(),
        set,
        opt,
    }
}

impl Rank {
    fn upload_grads(&mut self, step: u64, poison: Option<&str>) {
        for &n in &self.names {
            let mut g = grad_of(n, self.set.download_param(n).unwrap().len(), step);
            if poison == Some(n) {
                let mid = g.len() / 2;
                g[mid] = f32::NAN;
            }
            self.set.upload_grad(n, &g).unwrap();
        }
    }

    fn params(&self) -> Vec<(&'static str, Vec<f32>)> {
        self.names
            .iter()
            .map(|&n| (n, self.set.download_param(n).unwrap()))
            .collect()
    }
}

/// One clipped AdamW step over `ranks` through the two phases, the partials passed as
/// words (an all-gather); the total every rank used.
fn sharded_step(ranks: &mut [Rank], norm: Norm, max_norm: f32) -> (f32, Vec<StepState>) {
    let words: Vec<u64> = ranks
        .iter_mut()
        .enumerate()
        .flat_map(|(r, rank)| {
            let p = rank
                .opt
                .norm_partial(&mut rank.set, norm, Nonfinite::Skip, r)
                .unwrap();
            p.to_words()
        })
        .collect();
    let gathered: Vec<ShardPartial> = words
        .chunks(PARTIAL_WORDS)
        .map(|w| ShardPartial::from_words(w).unwrap())
        .collect();
    let total = combine(&gathered).unwrap();
    let options = StepOptions {
        clip: Clip::GlobalNorm { max_norm, norm },
        total_norm: Some(total),
        ..Default::default()
    };
    let states = ranks
        .iter_mut()
        .map(|rank| {
            let report = rank.opt.step(&mut rank.set, &options).unwrap();
            report.read_blocking().unwrap()
        })
        .collect();
    (total, states)
}

fn by_name(ranks: &[Rank]) -> std::collections::BTreeMap<&'static str, Vec<f32>> {
    ranks.iter().flat_map(Rank::params).collect()
}

/// A tensor's power sum depends on its own gradients only: the same tensor in sets of
/// other neighbours and slab caps gives the same bits, so combining ranks in any order
/// gives the one-rank total bit for bit, for every norm. The total agrees with the
/// one-pass device norm and the f64 reference to f32 tolerance.
#[test]
fn sharded_total_is_the_single_rank_total_bit_for_bit() {
    let names: Vec<&str> = MODEL.iter().map(|m| m.0).collect();
    let all_grads: Vec<Vec<f32>> = MODEL.iter().map(|&(n, s)| grad_of(n, s, 1)).collect();
    let slices: Vec<&[f32]> = all_grads.iter().map(Vec::as_slice).collect();
    for ctx in [ctx(), Context::cpu()] {
        let mut whole = rank(&ctx, &names, &[], None);
        whole.upload_grads(1, None);
        let mut shards = [
            rank(&ctx, &["head", "b1", "empty"], &[], Some(64 * 1024)),
            rank(&ctx, &["w2", "embed"], &[], Some(128 * 1024)),
            rank(&ctx, &["b2", "w1"], &[], None),
        ];
        shards.iter_mut().for_each(|r| r.upload_grads(1, None));
        for norm in [Norm::L1, Norm::L2, Norm::Inf, Norm::P(3.0)] {
            let one = whole.set.norm_partial(norm, Nonfinite::Skip).unwrap();
            let single = combine(std::slice::from_ref(&one)).unwrap();
            let parts: Vec<ShardPartial> = shards
                .iter_mut()
                .map(|r| r.set.norm_partial(norm, Nonfinite::Skip).unwrap())
                .collect();
            let what = format!("{norm:?} on {}", ctx.describe());
            assert_eq!(
                combine(&parts).unwrap().to_bits(),
                single.to_bits(),
                "{what}"
            );
            let reversed: Vec<ShardPartial> = parts.iter().rev().cloned().collect();
            assert_eq!(
                combine(&reversed).unwrap().to_bits(),
                single.to_bits(),
                "{what}"
            );
            let device = whole
                .set
                .global_norm(norm)
                .unwrap()
                .read_blocking()
                .unwrap();
            assert_rel(single, device.total_norm, CROSS_PATH_NORM_REL, &what);
            let reference = reference::global_norm(&slices, norm.order());
            assert_rel(single, reference, CROSS_PATH_NORM_REL, &what);
            assert_eq!(one.tensor_sums().len(), MODEL.len());
            assert!(!one.nonfinite());
        }
    }
}

/// Clipped AdamW over 3 ranks (one on a Context of its own), 6 steps, clipping active:
/// every parameter bit-identical to one process running the same two phases, and within
/// the trajectory tolerance of the one-pass fused step; the same total on every rank.
#[test]
fn sharded_steps_match_one_process() {
    let names: Vec<&str> = MODEL.iter().map(|m| m.0).collect();
    for ctx in [ctx(), Context::cpu()] {
        let other = if ctx.is_gpu() {
            Context::new().unwrap()
        } else {
            Context::cpu()
        };
        let mut shards = [
            rank(&ctx, &["head", "b1"], &[], Some(64 * 1024)),
            rank(&other, &["w2", "embed", "empty"], &[], None),
            rank(&ctx, &["b2", "w1"], &[], None),
        ];
        let mut single = [rank(&ctx, &names, &[], None)];
        let mut one_pass = rank(&ctx, &names, &[], None);
        let clip = Clip::GlobalNorm {
            max_norm: 5.0,
            norm: Norm::L2,
        };
        for step in 0..6 {
            shards.iter_mut().for_each(|r| r.upload_grads(step, None));
            single[0].upload_grads(step, None);
            one_pass.upload_grads(step, None);
            let (total, states) = sharded_step(&mut shards, Norm::L2, 5.0);
            let (single_total, _) = sharded_step(&mut single, Norm::L2, 5.0);
            assert_eq!(total.to_bits(), single_total.to_bits(), "step {step}");
            assert!(states.iter().all(|s| s.total_norm == total && !s.skipped));
            assert!(states[0].clip_coef < 1.0, "the clip must be active");
            let options = StepOptions {
                clip,
                ..Default::default()
            };
            let report = one_pass.opt.step(&mut one_pass.set, &options).unwrap();
            assert_rel(
                report.read_blocking().unwrap().total_norm,
                total,
                CROSS_PATH_NORM_REL,
                "one pass",
            );
        }
        let sharded = by_name(&shards);
        for (name, want) in by_name(&single) {
            assert_bits_eq(&sharded[name], &want, name);
            let one = one_pass.set.download_param(name).unwrap();
            assert_close(
                &one,
                &want,
                f64::from(TRAJECTORY_REL),
                TRAJECTORY_FLOOR,
                name,
            );
        }
        for r in &shards {
            assert_eq!(r.opt.states().step_count().unwrap(), 6);
        }
    }
}

/// A tensor replicated on every rank (its own replicated group) counts once: three ranks
/// that each hold it give the total of one process that holds it once, and each rank's
/// copy gets the same update.
#[test]
fn replicated_tensor_counts_once() {
    let ctx = ctx();
    let mut shards = [
        rank(&ctx, &["head", "b1", "w1"], &["w1"], None),
        rank(&ctx, &["w2", "w1"], &["w1"], None),
        rank(&ctx, &["w1", "b2"], &["w1"], None),
    ];
    let mut single = [rank(&ctx, &["head", "b1", "w2", "w1", "b2"], &[], None)];
    for step in 0..3 {
        shards.iter_mut().for_each(|r| r.upload_grads(step, None));
        single[0].upload_grads(step, None);
        let (total, _) = sharded_step(&mut shards, Norm::L2, 2.0);
        let (want, _) = sharded_step(&mut single, Norm::L2, 2.0);
        assert_eq!(total.to_bits(), want.to_bits(), "step {step}");
    }
    let want = single[0].set.download_param("w1").unwrap();
    for r in &shards {
        assert_bits_eq(&r.set.download_param("w1").unwrap(), &want, "replicated w1");
    }
    // Rank 1 alone counts nothing of w1; rank 0 counts it.
    let p1 = shards[1]
        .opt
        .norm_partial(&mut shards[1].set, Norm::L2, Nonfinite::Skip, 1)
        .unwrap();
    let w1 = shards[1].names.iter().position(|&n| n == "w1").unwrap();
    assert_eq!(p1.tensor_sums()[w1], 0.0);
    let p0 = shards[2]
        .opt
        .norm_partial(&mut shards[2].set, Norm::L2, Nonfinite::Skip, 0)
        .unwrap();
    assert!(p0.tensor_sums()[0] > 0.0);
}

/// One rank's NaN makes the combined total NaN: every rank skips the step, leaving
/// parameters, states and the step count as they were; the next clean step proceeds.
#[test]
fn one_ranks_nan_skips_every_rank() {
    let ctx = ctx();
    let mut shards = [
        rank(&ctx, &["head", "b1"], &[], None),
        rank(&ctx, &["w2", "embed"], &[], None),
    ];
    shards.iter_mut().for_each(|r| r.upload_grads(0, None));
    sharded_step(&mut shards, Norm::L2, 1.0);
    let before = by_name(&shards);
    shards[0].upload_grads(1, None);
    shards[1].upload_grads(1, Some("embed"));
    let (total, states) = sharded_step(&mut shards, Norm::L2, 1.0);
    assert!(total.is_nan());
    assert!(states
        .iter()
        .all(|s| s.skipped && s.nonfinite && s.step == 1));
    let after = by_name(&shards);
    for (name, want) in before {
        assert_bits_eq(&after[name], &want, name);
    }
    shards.iter_mut().for_each(|r| r.upload_grads(2, None));
    let (_, states) = sharded_step(&mut shards, Norm::L2, 1.0);
    assert!(states.iter().all(|s| !s.skipped && s.step == 2));
}

/// Under ZeroNans a NaN counts as 0 in the partial and the step goes on with it zeroed.
#[test]
fn zero_nans_partial_counts_nans_as_zero() {
    let ctx = ctx();
    let mut a = rank(&ctx, &["w2"], &[], None);
    let mut g = grad_of("w2", 1000, 0);
    g[10] = f32::NAN;
    a.set.upload_grad("w2", &g).unwrap();
    let p = a.set.norm_partial(Norm::L2, Nonfinite::ZeroNans).unwrap();
    assert!(p.nonfinite());
    g[10] = 0.0;
    let mut b = rank(&ctx, &["w2"], &[], None);
    b.set.upload_grad("w2", &g).unwrap();
    let q = b.set.norm_partial(Norm::L2, Nonfinite::ZeroNans).unwrap();
    assert_eq!(
        combine(&[p]).unwrap(),
        combine(std::slice::from_ref(&q)).unwrap()
    );
    // Mixing policies across ranks is an error, not a silent NaN.
    let r = b.set.norm_partial(Norm::L2, Nonfinite::Skip).unwrap();
    assert!(matches!(
        combine(&[q, r]),
        Err(Error::InvalidShardPartial(_))
    ));
}

/// Phase 2 for clip-only users: `clip_grads_with_norm` with the combined total clips every
/// shard as one process's `clip_grad_norm_` clips the whole.
#[test]
fn sharded_clip_matches_one_process_clip() {
    let ctx = ctx();
    let mut shards = [
        rank(&ctx, &["head", "b1"], &[], None),
        rank(&ctx, &["w1", "b2"], &[], None),
    ];
    let mut whole = rank(&ctx, &["head", "b1", "w1", "b2"], &[], None);
    shards.iter_mut().for_each(|r| r.upload_grads(3, None));
    whole.upload_grads(3, None);
    let parts: Vec<ShardPartial> = shards
        .iter_mut()
        .map(|r| r.set.norm_partial(Norm::L2, Nonfinite::Skip).unwrap())
        .collect();
    let total = combine(&parts).unwrap();
    for r in &mut shards {
        r.set
            .clip_grads_with_norm(1.0, total, Nonfinite::Skip)
            .unwrap();
    }
    whole
        .set
        .clip_grad_norm(1.0, Norm::L2, Nonfinite::Skip)
        .unwrap();
    for r in &shards {
        for &n in &r.names {
            let got = r.set.download_grad(n).unwrap();
            let want = whole.set.download_grad(n).unwrap();
            // The two totals are sums in different orders (the device's fold against the
            // shards' combined partials), each within NORM_REL of the norm: the clipped
            // gradients agree to the contract's CLIPPED_REL, not to a fixed ulp count.
            assert_close(&got, &want, CLIPPED_REL, 0.0, n);
        }
    }
}

/// Bad input: a negative total, an invalid norm order, another set: typed errors that
/// change nothing.
#[test]
fn bad_sharded_input_is_a_typed_error() {
    let ctx = ctx();
    let mut a = rank(&ctx, &["w2"], &[], None);
    let mut b = rank(&ctx, &["b2"], &[], None);
    a.upload_grads(0, None);
    let before = a.set.download_param("w2").unwrap();
    let options = StepOptions {
        total_norm: Some(-1.0),
        ..Default::default()
    };
    assert!(matches!(
        a.opt.step(&mut a.set, &options),
        Err(Error::InvalidTotalNorm(_))
    ));
    assert_bits_eq(
        &a.set.download_param("w2").unwrap(),
        &before,
        "after a bad total",
    );
    assert_eq!(a.opt.states().step_count().unwrap(), 0);
    assert!(matches!(
        a.set.norm_partial(Norm::P(-2.0), Nonfinite::Skip),
        Err(Error::InvalidNormOrder(_))
    ));
    assert!(matches!(
        a.opt.norm_partial(&mut b.set, Norm::L2, Nonfinite::Skip, 0),
        Err(Error::ParamSetMismatch { .. })
    ));
}

/// A tensor's per-tensor power sum is the same bits wherever it sits: first or after a
/// neighbour, in one slab or crossing slab boundaries at different offsets (a crossing
/// tensor starts on a chunk boundary, so its chunks are its own), for every norm.
#[test]
fn a_tensors_sum_does_not_depend_on_where_it_sits() {
    let ctx = ctx();
    const CAPS: [Option<u64>; 3] = [None, Some(64 * 1024), Some(128 * 1024)];
    for n in [70_001usize, 65_536, 16_385, 4465, 1000] {
        let g = data(n, n as u64, 1.5);
        for norm in [Norm::L1, Norm::L2, Norm::Inf, Norm::P(3.0)] {
            let mut sums = Vec::new();
            for (before, cap) in [0usize, 1000, 20_000]
                .into_iter()
                .flat_map(|b| CAPS.map(|c| (b, c)))
            {
                let mut specs = vec![TensorSpec::new("x", [n])];
                if before > 0 {
                    specs.insert(0, TensorSpec::new("before", [before]));
                }
                let options = ArenaOptions {
                    max_slab_bytes: cap,
                    ..Default::default()
                };
                let mut set = ParamSet::new(&ctx, &specs, options).unwrap();
                if before > 0 {
                    set.upload_grad("before", &data(before, 3, 1.5)).unwrap();
                }
                set.upload_grad("x", &g).unwrap();
                let partial = set.norm_partial(norm, Nonfinite::Skip).unwrap();
                sums.push((before, cap, partial.tensor_sums().last().unwrap().to_bits()));
            }
            assert!(
                sums.iter().all(|s| s.2 == sums[0].2),
                "{n} elements, {norm:?}: (before, slab cap, sum bits) {sums:?}"
            );
        }
    }
}
