//! clipstep inside burn's `Learner` (`SupervisedTraining`), through the recipe of
//! `examples/burn_learner.rs` (included here, so the example is what is tested): the same
//! run as burn's own AdamW, one clipstep set build for the whole training, a failed step
//! that stops the Learner and changes nothing, and the state saved beside the Learner's
//! checkpoints resuming the run.

#[allow(dead_code)]
#[path = "../examples/burn_learner.rs"]
mod recipe;

use burn::module::Module;
use clipstep::consts::tolerance::TRAINING_LOSS_REL;
use clipstep::Context;
use clipstep_burn::{shared_device, BurnOptimizer, Error, SharedOptimizer};
use recipe::{adamw, train, Regressor, BATCH, EXAMPLES};
use std::sync::OnceLock;

/// The shared device, once per test binary (cubecl registers it globally).
fn device() -> (Context, burn::tensor::Device) {
    static SHARED: OnceLock<(Context, burn::tensor::Device)> = OnceLock::new();
    SHARED
        .get_or_init(|| shared_device().expect("a wgpu adapter: install mesa-vulkan-drivers"))
        .clone()
}

/// Per tensor, the largest difference between `a` and `b`, and the largest distance `b`
/// travelled from `init`.
fn deviations(a: &[Vec<f32>], b: &[Vec<f32>], init: &[Vec<f32>]) -> Vec<(f32, f32)> {
    let max_diff = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    a.iter()
        .zip(b)
        .zip(init)
        .map(|((a, b), init)| (max_diff(a, b), max_diff(b, init)))
        .collect()
}

#[test]
fn the_learner_steps_with_clipstep_as_with_burns_adamw() {
    let (ctx, device) = device();
    let epochs = 4;
    let init = Regressor::new(&device, None).values();

    let theirs = train(Regressor::new(&device, None), epochs);
    let clipstep = SharedOptimizer::new(BurnOptimizer::from_burn(&ctx, &adamw()).unwrap());
    let ours = train(Regressor::new(&device, Some(clipstep.clone())), epochs);

    assert!(clipstep.take_error().is_none());
    assert_eq!(ours.stopped, None);
    let steps = epochs * EXAMPLES.div_ceil(BATCH);
    clipstep.with(|o| {
        let report = o.report().expect("stepped").read_blocking().unwrap();
        assert_eq!(report.step as usize, steps, "every batch stepped once");
        // The Learner clones the model before each step: the parameters move every step
        // (the clone holds the old handles), and the set follows them by a rebind.
        assert_eq!(o.builds(), 1, "one clipstep set for the whole training");
        assert_eq!(
            o.parameters_copied(),
            4,
            "the Learner's clone held every parameter"
        );
    });
    for (dev, moved) in deviations(&ours.model.values(), &theirs.model.values(), &init) {
        assert!(moved > 0.0, "burn's run trained");
        assert!(
            dev <= TRAINING_LOSS_REL * moved,
            "deviates {dev:e} from burn's run, moved {moved:e}"
        );
    }
    let (a, b) = (ours.model.loss(), theirs.model.loss());
    assert!(
        (a - b).abs() <= TRAINING_LOSS_REL * b,
        "loss {a} vs burn's {b}"
    );
    let first = Regressor::new(&device, None).loss();
    assert!(b < 0.5 * first, "the run learns: {first} -> {b}");
}

#[test]
fn a_failed_step_stops_the_learner_and_changes_nothing() {
    let (_, device) = device();
    // An optimizer on a Context of its own: not burn's device, refused at the first step.
    let elsewhere = Context::new().unwrap();
    let clipstep = SharedOptimizer::new(BurnOptimizer::from_burn(&elsewhere, &adamw()).unwrap());
    let init = Regressor::new(&device, None).values();
    let run = train(Regressor::new(&device, Some(clipstep.clone())), 3);

    let stopped = run.stopped.expect("the failed step stopped the Learner");
    assert!(stopped.contains("not on burn's device"), "{stopped}");
    assert_eq!(run.model.values(), init, "no parameter changed");
    let error = clipstep.take_error().expect("the error is kept");
    assert!(matches!(error, Error::ForeignContext), "{error}");
    assert!(clipstep.take_error().is_none(), "taken once");
}

#[test]
fn state_saved_beside_the_learner_resumes_the_run() {
    let (ctx, device) = device();
    let fresh = || SharedOptimizer::new(BurnOptimizer::from_burn(&ctx, &adamw()).unwrap());

    let straight = train(Regressor::new(&device, Some(fresh())), 4);

    // Two epochs, the state saved beside the model (the Learner's checkpoint holds burn's
    // optimizer record, not clipstep's), then two more from a new optimizer that loads it.
    let first = fresh();
    let half = train(Regressor::new(&device, Some(first.clone())), 2);
    let saved = first.with(|o| o.save()).unwrap();
    let second = fresh();
    let model = half.model.train().with_clipstep(Some(second.clone()));
    second.with(|o| o.load(&model, &saved)).unwrap();
    let resumed = train(model, 2);

    assert!(second.take_error().is_none());
    second.with(|o| {
        let report = o.report().expect("stepped").read_blocking().unwrap();
        assert_eq!(report.step as usize, 4 * EXAMPLES.div_ceil(BATCH));
    });
    assert_eq!(
        resumed.model.values(),
        straight.model.values(),
        "resumed run = straight run, bit for bit"
    );
}
