//! Parameter groups: against PyTorch's `param_groups` (golden fixture), against an
//! independent per-tensor reference on awkward layouts (several slabs, many tensors), on
//! every rule; per-group learning rates; checkpoints; typed errors for bad groups.

mod common;

use clipstep::consts::tolerance::{TRAJECTORY_FLOOR, TRAJECTORY_REL};
use clipstep::*;
use common::harness::three_groups;
use common::*;
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("../fixtures/pytorch.json");
    serde_json::from_str::<Value>(text).unwrap()["groups"].clone()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// AdamW with three groups (its own lr and weight decay each; the embedding with other
/// betas and left out of the global norm) follows PyTorch's trajectory on GPU and CPU.
#[test]
fn groups_follow_pytorch() {
    let f = fixture();
    let names = ["w", "b", "emb"];
    let shape = |n: &str| -> Vec<usize> {
        f["shapes"][n]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect()
    };
    for ctx in [ctx(), Context::cpu()] {
        let specs: Vec<TensorSpec> = names
            .iter()
            .map(|&n| TensorSpec::new(n, shape(n)))
            .collect();
        let mut set = ctx.param_set(&specs).unwrap();
        for n in names {
            set.upload_param(n, &f32s(&f["params"][n])).unwrap();
        }
        let groups: Vec<ParamGroup<AdamWConfig>> = f["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let tensors: Vec<String> = g["tensors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect();
                let mut config = AdamWConfig {
                    lr: g["lr"].as_f64().unwrap(),
                    weight_decay: g["weight_decay"].as_f64().unwrap(),
                    ..Default::default()
                };
                if let Some(b) = g.get("betas") {
                    config.betas = (b[0].as_f64().unwrap(), b[1].as_f64().unwrap());
                }
                let group = ParamGroup::new(tensors, config);
                if g["in_norm"].as_bool().unwrap() {
                    group
                } else {
                    group.excluded_from_norm()
                }
            })
            .collect();
        let mut opt = AdamW::with_groups(&set, groups).unwrap();
        let options = StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: f["max_norm"].as_f64().unwrap() as f32,
                norm: Norm::L2,
            },
            ..Default::default()
        };
        for (k, step) in f["steps"].as_array().unwrap().iter().enumerate() {
            for n in names {
                set.upload_grad(n, &f32s(&step["grads"][n])).unwrap();
            }
            let state = opt
                .step(&mut set, &options)
                .unwrap()
                .read_blocking()
                .unwrap();
            let total = step["total_norm"].as_f64().unwrap() as f32;
            assert_rel(
                state.total_norm,
                total,
                2e-6,
                &format!("step {k} total norm"),
            );
            for n in names {
                assert_trajectory(
                    &set.download_param(n).unwrap(),
                    &f32s(&step["params"][n]),
                    &format!("{} step {k} {n}", ctx.describe()),
                );
            }
        }
    }
}

/// Asserts `got` is within the trajectory tolerance of `want`.
fn assert_trajectory(got: &[f32], want: &[f32], what: &str) {
    assert_close(got, want, f64::from(TRAJECTORY_REL), TRAJECTORY_FLOOR, what);
}

/// One tensor's reference update: (group, params, effective grads, states, offset).
type RuleStep<'a> = dyn Fn(usize, &mut [f32], &[f32], &mut Vec<Vec<f32>>, usize) + 'a;

/// What a group changes, computed tensor by tensor from the reference: the norm over the
/// tensors in the norm, each tensor's gradient clipped unless its group is not, the
/// group's own hyperparameters.
struct Expected {
    params: Vec<f32>,
    states: Vec<Vec<f32>>,
}

/// Three groups over many tensors in several slabs: every rule on the GPU agrees with
/// the per-tensor reference.
#[test]
fn groups_on_many_tensors_and_slabs_match_the_reference() {
    let ctx = ctx();
    let sizes: Vec<usize> = (0..40)
        .map(|i| [1, 63, 64, 65, 257, 1000, 4099][i % 7])
        .collect();
    let (mut set, grads) = set_with_grads(&ctx, &sizes, Some(16 << 10), 3);
    assert!(set.num_slabs() > 2);
    let n: usize = sizes.iter().sum();
    let params = data(n, 4, 1.0);
    set.upload_params(&params).unwrap();
    // Group of tensor i: i % 3. Group 1 is out of the norm, group 2 unclipped.
    let lrs = [1e-2, 5e-2, 2e-3];
    let wds = [0.0, 0.1, 0.01];
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 0.5,
            norm: Norm::L2,
        },
        grad_scale: 2.0,
        ..Default::default()
    };
    // The clip coefficient over groups 0 and 2 only.
    let counted: Vec<&[f32]> = split(&grads, &sizes)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 1)
        .map(|(_, g)| g)
        .collect();
    let total = reference::global_norm(&counted, 2.0) / 2.0;
    let coef = reference::clip_coef(total, 0.5);
    let expected = |rule: &RuleStep<'_>| {
        let mut p = params.clone();
        let mut states: Vec<Vec<f32>> = vec![vec![0.0; n]; 3];
        let mut at = 0;
        for (i, &len) in sizes.iter().enumerate() {
            let g: Vec<f32> = grads[at..at + len]
                .iter()
                .map(|&x| {
                    reference::effective_grad(x, 0.5, if i % 3 == 2 { 1.0 } else { coef }, None)
                })
                .collect();
            rule(i % 3, &mut p[at..at + len], &g, &mut states, at);
            at += len;
        }
        Expected { params: p, states }
    };

    // AdamW: per-group lr, weight decay, and betas for group 2, whose 1 − β1 ≥ 0.5 takes
    // lerp's other form (compiled in for the step because one group needs it).
    let betas = |g: usize| if g == 2 { (0.4, 0.99) } else { (0.9, 0.999) };
    let groups = three_groups(&set, |g| AdamWConfig {
        lr: lrs[g],
        weight_decay: wds[g],
        betas: betas(g),
        ..Default::default()
    });
    let mut opt = AdamW::with_groups(&set, groups).unwrap();
    let state = opt
        .step(&mut set, &options)
        .unwrap()
        .read_blocking()
        .unwrap();
    assert_rel(
        state.total_norm,
        total,
        2e-6,
        "total norm over groups 0 and 2",
    );
    let want = expected(&|g, p, grad, s, at| {
        let len = p.len();
        let [m, v, _] = &mut s[..] else {
            unreachable!()
        };
        reference::adam(
            p,
            grad,
            &mut m[at..at + len],
            &mut v[at..at + len],
            None,
            1,
            lrs[g],
            betas(g),
            1e-8,
            wds[g],
            true,
            false,
            true,
        );
    });
    assert_trajectory(
        &set.download_params().unwrap(),
        &want.params,
        "AdamW params",
    );
    assert_trajectory(&opt.state("exp_avg").unwrap(), &want.states[0], "exp_avg");
    // Step 1's exp_avg is lerp(0, g, 1 − β1): each group's form, to the bit.
    assert_bits_eq(
        &opt.state("exp_avg").unwrap(),
        &want.states[0],
        "exp_avg, each group's lerp form",
    );

    // SGD with momentum, per-group lr and weight decay.
    set.upload_params(&params).unwrap();
    let groups = three_groups(&set, |g| SgdConfig {
        lr: lrs[g],
        momentum: 0.9,
        weight_decay: wds[g],
        ..Default::default()
    });
    let mut sgd = Sgd::with_groups(&set, groups).unwrap();
    sgd.step(&mut set, &options).unwrap();
    let want = expected(&|g, p, grad, s, at| {
        let len = p.len();
        reference::sgd(
            p,
            grad,
            Some(&mut s[0][at..at + len]),
            true,
            lrs[g],
            0.9,
            0.0,
            wds[g],
            false,
            false,
        );
    });
    assert_trajectory(&set.download_params().unwrap(), &want.params, "SGD params");

    // RMSprop, per-group lr.
    set.upload_params(&params).unwrap();
    let groups = three_groups(&set, |g| RmsPropConfig {
        lr: lrs[g],
        ..Default::default()
    });
    let mut rms = RmsProp::with_groups(&set, groups).unwrap();
    rms.step(&mut set, &options).unwrap();
    let want = expected(&|g, p, grad, s, at| {
        let len = p.len();
        reference::rmsprop(
            p,
            grad,
            &mut s[0][at..at + len],
            None,
            None,
            lrs[g],
            0.99,
            1e-8,
            0.0,
            0.0,
            false,
        );
    });
    assert_trajectory(
        &set.download_params().unwrap(),
        &want.params,
        "RMSprop params",
    );
}

/// Slabs that each hold one group: the kernels read a slab all of group 0 at the constant
/// group index 0 and gather every other slab's group per vec4 (`SHAPE_GROUP_GATHER`), so
/// a slab all of group 1, and group 0 listed second, must still get their own rows.
#[test]
fn slabs_of_one_group_each_read_their_own_group() {
    let ctx = ctx();
    // One tensor per 16 KiB slab (4096 elements), then a slab that holds both groups.
    let sizes = [4096, 4096, 4096, 1000, 2000];
    let (mut set, grads) = set_with_grads(&ctx, &sizes, Some(16 << 10), 7);
    assert_eq!(set.num_slabs(), 4);
    let n: usize = sizes.iter().sum();
    let params = data(n, 8, 1.0);
    set.upload_params(&params).unwrap();
    // Group 0: t1 and t3; group 1: t0, t2 and t4.
    let group_of = |t: usize| usize::from(t.is_multiple_of(2));
    let (lrs, wds) = ([1e-2, 7e-2], [0.0, 0.3]);
    let members = |g: usize| -> Vec<String> {
        (0..sizes.len())
            .filter(|&t| group_of(t) == g)
            .map(|t| format!("t{t}"))
            .collect()
    };
    let config = |g: usize| AdamWConfig {
        lr: lrs[g],
        weight_decay: wds[g],
        ..Default::default()
    };
    let groups = vec![
        ParamGroup::new(members(0), config(0)),
        ParamGroup::new(members(1), config(1)),
    ];
    let mut opt = AdamW::with_groups(&set, groups).unwrap();
    opt.step(&mut set, &StepOptions::default()).unwrap();

    let mut want = params.clone();
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let mut at = 0;
    for (t, &len) in sizes.iter().enumerate() {
        let g = group_of(t);
        let r = at..at + len;
        reference::adam(
            &mut want[r.clone()],
            &grads[r.clone()],
            &mut m[r.clone()],
            &mut v[r],
            None,
            1,
            lrs[g],
            (0.9, 0.999),
            1e-8,
            wds[g],
            true,
            false,
            true,
        );
        at += len;
    }
    assert_trajectory(
        &set.download_params().unwrap(),
        &want,
        "AdamW params, slabs of one group",
    );
}

/// One group's learning rate changes in stream; the others keep theirs; the GPU and the
/// CPU backend agree; checkpoints carry every group's hyperparameters.
#[test]
fn group_learning_rates_change_in_stream_and_survive_checkpoints() {
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, _) = set_with_grads(&ctx, &[100, 7], None, 5);
        let params = set.download_params().unwrap();
        let groups = vec![
            ParamGroup::new(
                ["t0"],
                SgdConfig {
                    lr: 0.1,
                    ..Default::default()
                },
            ),
            ParamGroup::new(
                ["t1"],
                SgdConfig {
                    lr: 0.2,
                    ..Default::default()
                },
            ),
        ];
        let mut opt = Sgd::with_groups(&set, groups).unwrap();
        assert_eq!(opt.num_groups(), 2);
        opt.set_group_learning_rate(1, 0.0).unwrap();
        assert_eq!(opt.group_learning_rate(0).unwrap(), 0.1);
        opt.step(&mut set, &StepOptions::default()).unwrap();
        let after = set.download_params().unwrap();
        assert_ne!(after[..100], params[..100], "group 0 moved");
        assert_bits_eq(&after[100..], &params[100..], "group 1 has lr 0");
        assert!(matches!(
            opt.set_group_learning_rate(2, 0.1),
            Err(Error::InvalidGroups(_))
        ));
        assert!(matches!(
            opt.set_group_learning_rate(0, -1.0),
            Err(Error::InvalidHyperparameter { .. })
        ));

        let bytes = opt.save().unwrap();
        let fresh_groups = vec![
            ParamGroup::new(["t0"], SgdConfig::default()),
            ParamGroup::new(["t1"], SgdConfig::default()),
        ];
        let mut fresh = Sgd::with_groups(&set, fresh_groups).unwrap();
        fresh.load(&bytes).unwrap();
        assert_eq!(fresh.group_learning_rate(0).unwrap(), 0.1);
        assert_eq!(fresh.group_learning_rate(1).unwrap(), 0.0);
        // Another group count is refused and changes nothing.
        let mut single = Sgd::new(&set, SgdConfig::default()).unwrap();
        let err = single.load(&bytes).unwrap_err();
        assert!(err.to_string().contains("2 parameter groups"), "{err}");
        assert_eq!(single.learning_rate(), SgdConfig::default().lr);
    }
}

#[test]
fn bad_groups_are_typed_errors() {
    let (set, _) = set_with_grads(&ctx(), &[3, 4, 5], None, 6);
    let adam = AdamConfig::default;
    let cases: Vec<(&str, Vec<ParamGroup<AdamConfig>>, &str)> = vec![
        ("no group", vec![], "at least one group"),
        (
            "a tensor in none",
            vec![ParamGroup::new(["t0", "t1"], adam())],
            "\"t2\" is in no group",
        ),
        (
            "a tensor in two",
            vec![
                ParamGroup::new(["t0", "t1"], adam()),
                ParamGroup::new(["t1", "t2"], adam()),
            ],
            "in group 0 and group 1",
        ),
        (
            "an unknown name",
            vec![ParamGroup::new(["t0", "t1", "t2", "nope"], adam())],
            "\"nope\"",
        ),
        (
            "different states",
            vec![
                ParamGroup::new(["t0"], adam()),
                ParamGroup::new(
                    ["t1", "t2"],
                    AdamConfig {
                        amsgrad: true,
                        ..adam()
                    },
                ),
            ],
            "keeps states",
        ),
    ];
    for (what, groups, expect) in cases {
        let err = Adam::with_groups(&set, groups).err().unwrap();
        assert!(
            matches!(err, Error::InvalidGroups(ref m) if m.contains(expect)),
            "{what}: {err}"
        );
    }
    let err = Adam::with_groups(
        &set,
        vec![ParamGroup::new(
            ["t0", "t1", "t2"],
            AdamConfig { lr: -1.0, ..adam() },
        )],
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, Error::InvalidHyperparameter { name: "lr", .. }),
        "{err}"
    );
}
