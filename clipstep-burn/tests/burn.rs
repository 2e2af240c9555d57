//! clipstep-burn against burn's own AdamW (unclipped trajectory), against clipstep's CPU
//! reference (clipped, on the same gradients), on a model spread over several pool pages,
//! and with a shared module (a clone keeps its values).

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::module::{Module, Param};
use burn::optim::{AdamWConfig as BurnAdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use clipstep::consts::tolerance::{
    CROSS_PATH_NORM_REL, STEP_FLOOR, TRAINING_LOSS_REL, TRAJECTORY_FLOOR, TRAJECTORY_REL,
};
use clipstep::{
    AdamW, AdamWConfig, ArenaOptions, Clip, Context, Norm, Optimizer, ParamSet, StepOptions,
    TensorSpec,
};
use clipstep_burn::{shared_device, BurnOptimizer};
use std::sync::OnceLock;

mod common;

use common::tensor;

/// A two-layer perceptron, `tanh(x·w1 + b1)·w2 + b2`.
#[derive(Module, Debug)]
struct Mlp {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
}

impl Mlp {
    fn new(device: &Device, d: usize, h: usize, o: usize) -> Mlp {
        let s1 = 1.0 / (d as f32).sqrt();
        let s2 = 1.0 / (h as f32).sqrt();
        Mlp {
            w1: Param::from_tensor(tensor(device, [d, h], 1, s1)),
            b1: Param::from_tensor(tensor(device, [h], 2, s1)),
            w2: Param::from_tensor(tensor(device, [h, o], 3, s2)),
            b2: Param::from_tensor(tensor(device, [o], 4, s2)),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = (x.matmul(self.w1.val()) + self.b1.val().unsqueeze()).tanh();
        h.matmul(self.w2.val()) + self.b2.val().unsqueeze()
    }

    fn params(&self) -> Vec<(&'static str, Vec<f32>)> {
        vec![
            ("w1", host(self.w1.val())),
            ("b1", host(self.b1.val())),
            ("w2", host(self.w2.val())),
            ("b2", host(self.b2.val())),
        ]
    }
}

/// A tensor's values on the host.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The shared device, once per test binary (cubecl registers it globally).
fn device() -> (Context, Device) {
    static SHARED: OnceLock<(Context, Device)> = OnceLock::new();
    SHARED
        .get_or_init(|| shared_device().expect("a wgpu adapter: install mesa-vulkan-drivers"))
        .clone()
}

/// Loss and gradients of the mean squared error on a fixed batch.
fn grads_of(model: &Mlp, x: &Tensor<2>, y: &Tensor<2>) -> (f32, GradientsParams) {
    let out = model.forward(x.clone());
    let loss = (out - y.clone()).powi_scalar(2).mean();
    let value = loss.clone().into_data().try_to_vec::<f32>().unwrap()[0];
    (value, GradientsParams::from_grads(loss.backward(), model))
}

fn batch(device: &Device, n: usize, d: usize, o: usize) -> (Tensor<2>, Tensor<2>) {
    let x = tensor(device, [n, d], 11, 1.0);
    let y = x.clone().sum_dim(1).sin().repeat_dim(1, o);
    (x, y)
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let tol = TRAJECTORY_REL * b.abs().max(TRAJECTORY_FLOOR as f32);
        assert!(
            (a - b).abs() <= tol,
            "{what}[{i}]: {a} vs {b} (tolerance {tol:e})"
        );
    }
}

/// `ours` follows `theirs` from `init`: per tensor, the largest difference is below 1e-4 of
/// the largest distance travelled. f32 rounding differences (burn divides by both bias
/// corrections, PyTorch's rule folds them into the step size) grow over the steps through
/// the gradients; they stay far below that (measured: 4e-6 of it).
fn assert_follows(ours: &Mlp, theirs: &Mlp, init: &Mlp) {
    for (name, dev, moved) in deviations(ours, theirs, init) {
        assert!(
            dev <= TRAINING_LOSS_REL * moved,
            "{name}: deviates {dev:e} from burn, moved {moved:e}"
        );
    }
}

/// Per tensor: its name, the largest difference between `ours` and `theirs`, and the
/// largest distance `theirs` travelled from `init`.
fn deviations(ours: &Mlp, theirs: &Mlp, init: &Mlp) -> Vec<(&'static str, f32, f32)> {
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let tensors = ours
        .params()
        .into_iter()
        .zip(theirs.params())
        .zip(init.params());
    tensors
        .map(|(((name, a), (_, b)), (_, p0))| (name, max_diff(&a, &b), max_diff(&b, &p0)))
        .collect()
}

const LR: f64 = 1e-2;
const WD: f64 = 1e-2;

/// The same AdamW in both libraries: learning rate `LR` (given at each step), weight
/// decay `WD`, eps 1e-8, betas (0.9, 0.999).
fn same_adamw() -> (AdamWConfig, BurnAdamWConfig) {
    let ours = AdamWConfig {
        lr: LR,
        weight_decay: WD,
        eps: 1e-8,
        ..Default::default()
    };
    let theirs = BurnAdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(WD as f32);
    (ours, theirs)
}

/// Two runs' parameters are the same bits, tensor by tensor.
fn assert_same_bits(a: &[(&str, Vec<f32>)], b: &[(&str, Vec<f32>)], what: &str) {
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let same = x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{name}: {what}");
    }
}

/// 50 unclipped steps under burn's cosine learning-rate schedule: clipstep's AdamW through
/// the adapter follows burn's own AdamW:
/// per tensor, the largest difference is below 1e-4 of the largest distance travelled.
#[test]
fn follows_burn_adamw_without_clipping() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let mut ours = Mlp::new(&device, 8, 32, 2);
    let mut theirs = Mlp::new(&device, 8, 32, 2);
    let (config, burn_config) = same_adamw();
    let mut clip_opt = BurnOptimizer::adamw(&ctx, config);
    let mut burn_opt = burn_config.init();
    // burn's cosine schedule drives both: clipstep takes it as its in-stream learning rate.
    let mut schedule = CosineAnnealingLrSchedulerConfig::new(LR, 50)
        .init()
        .unwrap();
    let mut losses = (0.0, 0.0);
    for _ in 0..50 {
        let lr = schedule.step();
        let (loss, grads) = grads_of(&ours, &x, &y);
        ours = clip_opt.step(lr.clone(), ours, grads).unwrap();
        let (burn_loss, grads) = grads_of(&theirs, &x, &y);
        theirs = burn_opt.step(lr, theirs, grads);
        losses = (loss, burn_loss);
    }
    assert_follows(&ours, &theirs, &Mlp::new(&device, 8, 32, 2));
    assert!(
        f64::from((losses.0 - losses.1).abs())
            <= f64::from(TRAINING_LOSS_REL) * f64::from(losses.1.abs()).max(STEP_FLOOR),
        "{losses:?}"
    );
    let state = clip_opt.report().unwrap().read_blocking().unwrap();
    assert_eq!(state.step, 50);
}

/// Clipped steps (the clip active): each step's result equals clipstep's CPU reference
/// given the same gradients and parameters.
#[test]
fn clipped_steps_match_the_cpu_reference() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let mut model = Mlp::new(&device, 8, 32, 2);
    let config = AdamWConfig {
        lr: LR,
        weight_decay: WD,
        ..Default::default()
    };
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 0.05,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    let mut opt = BurnOptimizer::adamw(&ctx, config).with_options(options);
    let cpu = Context::cpu();
    let shapes: [(&str, Vec<usize>); 4] = [
        ("w1", vec![8, 32]),
        ("b1", vec![32]),
        ("w2", vec![32, 2]),
        ("b2", vec![2]),
    ];
    let specs: Vec<TensorSpec> = shapes
        .iter()
        .map(|(n, s)| TensorSpec::new(*n, s.clone()))
        .collect();
    let mut reference = ParamSet::new(&cpu, &specs, ArenaOptions::default()).unwrap();
    let mut reference_opt = AdamW::new(&reference, config).unwrap();
    for (name, p) in model.params() {
        reference.upload_param(name, &p).unwrap();
    }
    for step in 0..20 {
        let (_, grads) = grads_of(&model, &x, &y);
        let host_grads = [
            host(grads.get::<2>(model.w1.id).unwrap()),
            host(grads.get::<1>(model.b1.id).unwrap()),
            host(grads.get::<2>(model.w2.id).unwrap()),
            host(grads.get::<1>(model.b2.id).unwrap()),
        ];
        for ((name, _), g) in shapes.iter().zip(&host_grads) {
            reference.upload_grad(name, g).unwrap();
        }
        let want = reference_opt
            .step(&mut reference, &options)
            .unwrap()
            .read_blocking()
            .unwrap();
        model = opt.step(LR, model, grads).unwrap();
        let got = opt.report().unwrap().read_blocking().unwrap();
        eprintln!(
            "step {step}: gradients in place: {}",
            opt.gradients_in_place()
        );
        assert!(got.clip_coef < 1.0, "step {step}: the clip must be active");
        let off = f64::from((got.total_norm - want.total_norm).abs());
        assert!(off <= CROSS_PATH_NORM_REL * f64::from(want.total_norm));
        for (name, p) in model.params() {
            let r = reference.download_param(name).unwrap();
            assert_close(&p, &r, &format!("step {step} {name}"));
            // Stay on one trajectory: the reference continues from the GPU's parameters.
            reference.upload_param(name, &p).unwrap();
        }
    }
}

/// Large layers land on several of burn's pool buffers: one clipstep pool each, the step
/// still equal to the reference; a clone of the module taken before the step keeps its
/// values (shared parameters are not updated in place).
#[test]
fn many_pool_pages_and_shared_modules() {
    let (ctx, device) = device();
    let (d, h, o) = (512, 1536, 512);
    let (x, y) = batch(&device, 8, d, o);
    let model = Mlp::new(&device, d, h, o);
    let config = AdamWConfig {
        lr: LR,
        ..Default::default()
    };
    let mut opt = BurnOptimizer::adamw(&ctx, config);
    let (_, grads) = grads_of(&model, &x, &y);
    let model = opt.step(LR, model, grads).unwrap();
    assert!(
        opt.parameter_buffers() >= 2,
        "{} buffers",
        opt.parameter_buffers()
    );
    let before = model.params();
    let kept = model.clone();
    let (_, grads) = grads_of(&model, &x, &y);
    let w1_grad = host(grads.get::<2>(model.w1.id).unwrap());
    let model = opt.step(LR, model, grads).unwrap();
    for ((name, a), (_, b)) in kept.params().iter().zip(&before) {
        assert_eq!(a, b, "{name}: the clone must keep its values");
    }
    let after = model.params();
    assert_ne!(after[0].1, before[0].1, "the stepped module must change");
    // The second AdamW step of w1, on the host: p·(1 − lr·wd) − lr·m̂/(sqrt(v̂) + eps).
    let (b1, b2) = (0.9f64, 0.999f64);
    let first_grad_sign = opt
        .clipstep_optimizer()
        .unwrap()
        .states()
        .get("exp_avg")
        .unwrap();
    assert_eq!(
        first_grad_sign.len() as u64,
        after.iter().map(|p| p.1.len() as u64).sum::<u64>()
    );
    let m = &first_grad_sign[..w1_grad.len()];
    let v = &opt
        .clipstep_optimizer()
        .unwrap()
        .states()
        .get("exp_avg_sq")
        .unwrap()[..w1_grad.len()];
    for i in (0..w1_grad.len()).step_by(4099) {
        let mhat = f64::from(m[i]) / (1.0 - b1.powi(2));
        let vhat = f64::from(v[i]) / (1.0 - b2.powi(2));
        let want = f64::from(before[0].1[i]) * (1.0 - LR * 1e-2) - LR * mhat / (vhat.sqrt() + 1e-8);
        let got = f64::from(after[0].1[i]);
        assert!(
            (got - want).abs() <= f64::from(TRAJECTORY_REL) * want.abs().max(STEP_FLOOR),
            "w1[{i}]: {got} vs {want}"
        );
    }
}

/// Both ways of reading burn's gradients (in place, or copied into the optimizer's buffer
/// first) give the same bits.
#[test]
fn gradients_in_place_or_copied_give_the_same_bits() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let config = AdamWConfig {
        lr: LR,
        ..Default::default()
    };
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 0.05,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    let mut runs = Vec::new();
    for copies in [false, true] {
        let mut model = Mlp::new(&device, 8, 32, 2);
        let mut opt = BurnOptimizer::adamw(&ctx, config)
            .with_options(options)
            .with_gradient_copies(copies);
        let mut in_place = 0;
        for _ in 0..5 {
            let (_, grads) = grads_of(&model, &x, &y);
            model = opt.step(LR, model, grads).unwrap();
            in_place += usize::from(opt.gradients_in_place());
        }
        eprintln!("copies forced: {copies}; read in place in {in_place} of 5 steps");
        assert!(!copies || in_place == 0);
        runs.push(model.params());
    }
    assert_same_bits(&runs[0], &runs[1], "in place and copied differ");
}

/// Per-tensor clipping (the clip active on every tensor), built from burn's own config by
/// `from_burn`: 30 steps follow burn's AdamW with its per-tensor norm clip (`GradientClippingConfig::Norm`; burn's eps is the least normal
/// f32, clipstep's 1e-6, as PyTorch).
#[test]
fn per_tensor_clip_follows_burns() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let mut ours = Mlp::new(&device, 8, 32, 2);
    let mut theirs = Mlp::new(&device, 8, 32, 2);
    let (_, burn_config) = same_adamw();
    let max_norm = 0.02;
    let burn_config = burn_config.with_grad_clipping(Some(GradientClippingConfig::Norm(max_norm)));
    // from_burn turns burn's per-tensor norm clip into clipstep's.
    let mut clip_opt = BurnOptimizer::from_burn(&ctx, &burn_config).unwrap();
    let mut burn_opt = burn_config.init();
    let init = Mlp::new(&device, 8, 32, 2);
    for _ in 0..30 {
        let (_, grads) = grads_of(&ours, &x, &y);
        ours = clip_opt.step(LR, ours, grads).unwrap();
        let (_, grads) = grads_of(&theirs, &x, &y);
        theirs = burn_opt.step(LR, theirs, grads);
    }
    assert_follows(&ours, &theirs, &init);
}

/// State through a clipstep checkpoint: 3 steps, save, a new optimizer loads it (before its
/// first step) and continues; the parameters equal an uninterrupted run bit for bit.
#[test]
fn saved_state_continues_the_run() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let config = AdamWConfig {
        lr: LR,
        ..Default::default()
    };
    let steps = |opt: &mut BurnOptimizer, mut model: Mlp, n: usize| {
        for _ in 0..n {
            let (_, grads) = grads_of(&model, &x, &y);
            model = opt.step(LR, model, grads).unwrap();
        }
        model
    };
    let mut straight = BurnOptimizer::adamw(&ctx, config);
    let whole = steps(&mut straight, Mlp::new(&device, 8, 32, 2), 6);

    let mut first = BurnOptimizer::adamw(&ctx, config);
    let half = steps(&mut first, Mlp::new(&device, 8, 32, 2), 3);
    let saved = first.save().unwrap();
    let mut second = BurnOptimizer::adamw(&ctx, config);
    second.load(&half, &saved).unwrap();
    let resumed = steps(&mut second, half, 3);
    assert_eq!(
        second
            .clipstep_optimizer()
            .unwrap()
            .states()
            .step_count()
            .unwrap(),
        6
    );
    assert_same_bits(
        &resumed.params(),
        &whole.params(),
        "the resumed run differs",
    );
}

/// `from_burn` keeps burn's defaults (eps 1e-5, weight decay 1e-4, not PyTorch's 1e-8 and
/// 1e-2): 20 steps follow burn's default AdamW, which clipstep's own defaults would not.
#[test]
fn from_burn_follows_burns_default_adamw() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let init = Mlp::new(&device, 8, 32, 2);
    let run = |mut opt: BurnOptimizer| {
        let mut model = Mlp::new(&device, 8, 32, 2);
        for _ in 0..20 {
            let (_, grads) = grads_of(&model, &x, &y);
            model = opt.step(LR, model, grads).unwrap();
        }
        model
    };
    let ours = run(BurnOptimizer::from_burn(&ctx, &BurnAdamWConfig::new()).unwrap());
    let mut theirs = Mlp::new(&device, 8, 32, 2);
    let mut burn_opt = BurnAdamWConfig::new().init();
    for _ in 0..20 {
        let (_, grads) = grads_of(&theirs, &x, &y);
        theirs = burn_opt.step(LR, theirs, grads);
    }
    assert_follows(&ours, &theirs, &init);
    let pytorch_defaults = run(BurnOptimizer::adamw(&ctx, AdamWConfig::default()));
    let apart = deviations(&pytorch_defaults, &theirs, &init)
        .into_iter()
        .any(|(_, dev, moved)| dev > TRAINING_LOSS_REL * moved);
    assert!(apart, "PyTorch's defaults must not pass for burn's");
    let cautious = BurnAdamWConfig::new().with_cautious_weight_decay(true);
    let err = BurnOptimizer::from_burn(&ctx, &cautious).err().unwrap();
    assert!(matches!(err, clipstep_burn::Error::Config(_)), "{err}");
}

/// burn's `Learner` clones the model before its optimizer step (`self.model().optimize(..)`),
/// so every parameter is shared at the step and stepped into a fresh tensor: the set follows
/// by a rebind, never a rebuild after the first step, and the run is the same bits as one
/// without clones.
#[test]
fn a_clone_alive_at_each_step_costs_a_rebind_not_a_rebuild() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let config = AdamWConfig {
        lr: LR,
        ..Default::default()
    };
    let mut runs = Vec::new();
    for learner_like in [false, true] {
        let mut opt = BurnOptimizer::adamw(&ctx, config);
        let mut model = Mlp::new(&device, 8, 32, 2);
        for _ in 0..8 {
            let (_, grads) = grads_of(&model, &x, &y);
            model = if learner_like {
                let stepped = opt.step(LR, model.clone(), grads).unwrap();
                drop(model);
                stepped
            } else {
                opt.step(LR, model, grads).unwrap()
            };
        }
        assert_eq!(opt.builds(), 1, "learner-like: {learner_like}");
        let copied = if learner_like { 4 } else { 0 };
        assert_eq!(
            opt.parameters_copied(),
            copied,
            "learner-like: {learner_like}"
        );
        runs.push(model.params());
    }
    assert_same_bits(&runs[0], &runs[1], "a clone at each step changed the run");
}

/// Per-group rates stay relative to burn's: a clipstep group configured at lr 0 stays
/// frozen, one at half the first group's rate moves at half burn's rate (AdamW's first step
/// moves each element by about lr).
#[test]
fn group_rates_stay_relative_to_burns() {
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let config = AdamWConfig {
        lr: 1e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = BurnOptimizer::new(&ctx, move |set| {
        let groups = vec![
            clipstep::ParamGroup::new(["w1", "b1"], config),
            clipstep::ParamGroup::new(["w2"], AdamWConfig { lr: 5e-4, ..config }),
            clipstep::ParamGroup::new(["b2"], AdamWConfig { lr: 0.0, ..config }),
        ];
        Ok(Box::new(AdamW::with_groups(set, groups)?))
    });
    let mut model = Mlp::new(&device, 8, 32, 2);
    let before = model.params();
    for step in 0..3 {
        let (_, grads) = grads_of(&model, &x, &y);
        let lr = if step == 0 { LR } else { 0.0 };
        model = opt.step(lr, model, grads).unwrap();
    }
    let after = model.params();
    let moved = |k: usize| {
        after[k]
            .1
            .iter()
            .zip(&before[k].1)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max)
    };
    assert!((moved(0) - LR).abs() <= 1e-3 * LR, "w1 moved {}", moved(0));
    assert!(
        (moved(2) - LR / 2.0).abs() <= 1e-3 * LR,
        "w2 moved {}",
        moved(2)
    );
    assert_eq!(after[3].1, before[3].1, "b2 (lr 0) must stay frozen");
}

/// burn's per-group schedules (`ModuleLrSchedulerConfig::with_group`): with the groups
/// declared, clipstep follows burn's AdamW under the same schedule; without, the step is an
/// error naming the tensor whose rate differs from its group's.
#[test]
fn burn_group_schedules() {
    use burn::lr_scheduler::module_lr_scheduler::ModuleLrSchedulerConfig;
    use burn::module::ParamGroup as BurnGroup;
    let (ctx, device) = device();
    let (x, y) = batch(&device, 64, 8, 2);
    let (config, burn_config) = same_adamw();
    let head = || BurnGroup::from_paths(vec!["w2", "b2"]);
    let schedule = || {
        ModuleLrSchedulerConfig::new(CosineAnnealingLrSchedulerConfig::new(LR, 30).into())
            .with_group(head(), LR / 4.0)
            .init()
            .unwrap()
    };
    let init = Mlp::new(&device, 8, 32, 2);
    let mut ours = Mlp::new(&device, 8, 32, 2);
    let mut theirs = Mlp::new(&device, 8, 32, 2);
    let mut clip_opt = BurnOptimizer::adamw(&ctx, config).with_burn_groups(vec![head()]);
    let mut burn_opt = burn_config.init();
    let (mut our_schedule, mut their_schedule) = (schedule(), schedule());
    for _ in 0..30 {
        let (_, grads) = grads_of(&ours, &x, &y);
        ours = clip_opt.step(our_schedule.step(), ours, grads).unwrap();
        let (_, grads) = grads_of(&theirs, &x, &y);
        theirs = burn_opt.step(their_schedule.step(), theirs, grads);
    }
    assert_follows(&ours, &theirs, &init);

    let mut undeclared = BurnOptimizer::adamw(&ctx, config);
    let (_, grads) = grads_of(&init, &x, &y);
    let err = undeclared
        .step(schedule().step(), init, grads)
        .err()
        .unwrap();
    match &err {
        clipstep_burn::Error::GroupRate { name, other, .. } => {
            assert_eq!((name.as_str(), other.as_str()), ("w2", "w1"), "{err}")
        }
        other => panic!("{other}"),
    }
}

/// Errors that name their cause: a Context on another device; a checkpoint of a larger
/// model, or of another rule, refused at load (before the first step, nothing changed);
/// `shared_device` called again returns the same device.
#[test]
fn typed_errors_name_the_cause() {
    let (_, device) = device();
    let (again, device_again) = shared_device().unwrap();
    assert!(device_again == device);
    let (x, y) = batch(&device, 64, 8, 2);
    let config = AdamWConfig {
        lr: LR,
        ..Default::default()
    };

    let elsewhere = Context::new().unwrap();
    let mut foreign = BurnOptimizer::adamw(&elsewhere, config);
    let model = Mlp::new(&device, 8, 32, 2);
    let (_, grads) = grads_of(&model, &x, &y);
    let err = foreign.step(LR, model, grads).err().unwrap();
    assert!(matches!(err, clipstep_burn::Error::ForeignContext), "{err}");

    let mut opt = BurnOptimizer::adamw(&again, config);
    let mut model = Mlp::new(&device, 8, 32, 2);
    for _ in 0..2 {
        let (_, grads) = grads_of(&model, &x, &y);
        model = opt.step(LR, model, grads).unwrap();
    }
    let saved = opt.save().unwrap();

    /// The first layer of `Mlp` only: a smaller model.
    #[derive(Module, Debug)]
    struct Head {
        w1: Param<Tensor<2>>,
        b1: Param<Tensor<1>>,
    }
    let small = Head {
        w1: Param::from_tensor(tensor(&device, [8, 32], 1, 0.1)),
        b1: Param::from_tensor(tensor(&device, [32], 2, 0.1)),
    };
    let mut fresh = BurnOptimizer::adamw(&again, config);
    let err = fresh.load(&small, &saved).err().unwrap();
    assert!(
        matches!(err, clipstep_burn::Error::Checkpoint(ref m) if m.contains("\"w2\"")),
        "{err}"
    );
    let wider = Mlp::new(&device, 8, 16, 2);
    let err = fresh.load(&wider, &saved).err().unwrap();
    assert!(
        matches!(err, clipstep_burn::Error::Checkpoint(ref m) if m.contains("shape")),
        "{err}"
    );
    let mut sgd = BurnOptimizer::rule(&again, clipstep::SgdConfig::default());
    let err = sgd.load(&model, &saved).err().unwrap();
    assert!(
        matches!(err, clipstep_burn::Error::Checkpoint(ref m) if m.contains("AdamW")),
        "{err}"
    );
    assert!(
        fresh.save().is_err(),
        "a refused load leaves nothing pending"
    );
    fresh.load(&model, &saved).unwrap();

    // An f16 parameter given an f32 gradient: Unsupported, saying which dtypes.
    let half = Head {
        w1: Param::from_tensor(tensor(&device, [8, 32], 1, 0.1).cast(burn::tensor::DType::F16)),
        b1: Param::from_tensor(tensor(&device, [32], 2, 0.1)),
    };
    let mut grads = GradientsParams::new();
    grads.register(half.w1.id, tensor(&device, [8, 32], 3, 0.1).inner());
    grads.register(half.b1.id, tensor(&device, [32], 4, 0.1).inner());
    let err = BurnOptimizer::adamw(&again, config)
        .step(LR, half, grads)
        .err()
        .unwrap();
    assert!(
        matches!(err, clipstep_burn::Error::Unsupported { ref name, ref reason }
            if name == "w1" && reason.contains("F32") && reason.contains("F16")
                && !reason.contains("fusion")),
        "{err}"
    );
}
