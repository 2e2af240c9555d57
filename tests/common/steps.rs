//! Fused optimizer steps against the CPU reference, shared by the optimizer test files:
//! each config's reference step, and the checks that run a config over a matrix of clips,
//! loss scales and layouts, and over 100 steps.

use std::collections::BTreeMap;

use clipstep::consts::tolerance::{
    TRAJECTORY_FLOOR, TRAJECTORY_REL, TRUST_TRAJECTORY_REL, UPDATE_ABS, UPDATE_ULPS,
};
use clipstep::*;

use super::*;

/// The clips every config is checked under.
pub fn clips() -> Vec<Clip> {
    vec![
        Clip::None,
        Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        Clip::GlobalNorm {
            max_norm: 3.0,
            norm: Norm::Inf,
        },
        Clip::Value { clip_value: 0.05 },
        Clip::NormThenValue {
            max_norm: 2.0,
            norm: Norm::L1,
            clip_value: 0.001,
        },
    ]
}

/// Every clip of [`clips`], unscaled and at a loss scale of 128: the options each rule's
/// matrix of checks steps under.
pub fn clipped_and_scaled() -> Vec<StepOptions> {
    clips()
        .into_iter()
        .flat_map(|clip| {
            [1.0, 128.0].map(|grad_scale| StepOptions {
                clip,
                grad_scale,
                ..Default::default()
            })
        })
        .collect()
}

/// The reference step of every registered rule, from its config's own hook
/// ([`RuleConfig::reference_step`], the CPU backend's step): over the tensors of a set,
/// states by name as the optimizer keeps them.
pub trait ReferenceStep: RuleConfig {
    /// One step (`step` = 1 on the first) over a set of tensors of `sizes`, concatenated,
    /// tensor by tensor; `states` by name (a state missing from it starts fresh).
    fn reference_step_over(
        &self, step: u32, params: &mut [f32], grads: &[f32],
        states: &mut BTreeMap<String, Vec<f32>>, sizes: &[usize],
    ) {
        let n = params.len();
        let (names, fresh) = (self.state_names(), self.initial_state());
        let mut slots: Vec<Vec<f32>> = names
            .iter()
            .zip(fresh)
            .map(|(name, value)| match name {
                Some(k) => states.remove(*k).unwrap_or_else(|| vec![value; n]),
                None => Vec::new(),
            })
            .collect();
        let mut at = 0;
        for &len in sizes {
            let range = at..at + len;
            let mut parts = slots
                .iter_mut()
                .map(|v| (!v.is_empty()).then(|| &mut v[range.clone()]));
            let three = [parts.next(), parts.next(), parts.next()].map(Option::flatten);
            let tensor = TensorStep {
                params: &mut params[range.clone()],
                grads: &grads[range],
                shape: &[],
                states: three,
            };
            self.reference_step(step, tensor);
            at += len;
        }
        for (name, values) in names.iter().zip(slots) {
            if let Some(k) = name {
                states.insert(k.to_string(), values);
            }
        }
    }

    /// A state after one step against the reference's: within the update tolerance, or
    /// for Adafactor within 2e-6 relative: its β2 weight `t^beta2_decay` is a WGSL `pow` on
    /// the device (a few ulp: `exp2(y·log2 t)`) and f64 rounded once in the reference, and
    /// its lerp carries that into the state by as much as the lerp's operands cancel (7
    /// ulp seen on lavapipe).
    fn assert_state_close(&self, got: &[f32], want: &[f32], what: &str) {
        if Self::NAME == "Adafactor" {
            assert_close(got, want, 2e-6, 1e-30, what);
        } else {
            assert_close_elementwise(got, want, UPDATE_ULPS, UPDATE_ABS, what);
        }
    }

    /// How far a 100-step trajectory may drift from the CPU backend's.
    fn trajectory_rel(&self) -> f32 {
        if Self::TENSORWISE {
            TRUST_TRAJECTORY_REL
        } else {
            TRAJECTORY_REL
        }
    }
}

impl<C: RuleConfig> ReferenceStep for C {}

/// The parameters and every state the optimizer keeps, by name.
pub fn downloads<O: Optimizer>(opt: &O, set: &ParamSet) -> (Vec<f32>, BTreeMap<String, Vec<f32>>) {
    let states = opt
        .states()
        .names()
        .into_iter()
        .map(|n| (n.to_string(), opt.states().get(n).unwrap()))
        .collect();
    (set.download_params().unwrap(), states)
}

/// Three steps of `config` with `options`; before each, the reference takes the GPU's
/// params and states, and after it every element must be within the update tolerance.
pub fn steps_match<C: ReferenceStep>(
    config: C, options: StepOptions, sizes: &[usize], slab: Option<u64>,
) {
    let ctx = ctx();
    let (mut set, _) = set_with_grads(&ctx, sizes, slab, 1);
    let n: usize = sizes.iter().sum();
    set.upload_params(&data(n, 2, 1.0)).unwrap();
    let mut opt = config.build(&set).unwrap();
    for step in 0..3u64 {
        let grads = data(n, 10 + step, 1.0 + step as f32);
        set.upload_grads(&grads).unwrap();
        let (mut p, mut s) = downloads(&opt, &set);
        let report = opt.step(&mut set, &options).unwrap();
        let state = report.read_blocking().unwrap();
        let what = format!("{config:?}, {options:?}, step {step}");

        // The step state against the f64 reference.
        let norm = options.clip.norm_clip().map_or(Norm::L2, |(_, n)| n);
        let inv = 1.0 / options.grad_scale;
        let total = reference::global_norm(&split(&grads, sizes), norm.order()) * inv;
        let tol = norm_tolerance(norm);
        assert_rel(state.total_norm, total, tol, &format!("{what}: total norm"));
        if let Some((max_norm, _)) = options.clip.norm_clip() {
            let coef = reference::clip_coef(total, max_norm);
            assert_rel(
                state.clip_coef,
                coef,
                tol,
                &format!("{what}: clip coefficient"),
            );
        } else {
            assert_eq!(state.clip_coef, 1.0, "{what}");
        }
        assert_eq!(state.step, step as u32 + 1, "{what}");

        // The update against the f32 reference fed the GPU's clip coefficient.
        let clip_value = options.clip.value_clip();
        let effective: Vec<f32> = grads
            .iter()
            .map(|&g| reference::effective_grad(g, inv, state.clip_coef, clip_value))
            .collect();
        config.reference_step_over(state.step, &mut p, &effective, &mut s, sizes);
        let (gp, gs) = downloads(&opt, &set);
        assert_close_elementwise(&gp, &p, UPDATE_ULPS, UPDATE_ABS, &format!("{what}: params"));
        for (name, got) in &gs {
            config.assert_state_close(got, &s[name], &format!("{what}: {name}"));
        }
    }
}

pub fn matrix<C: ReferenceStep>(configs: Vec<C>) {
    let sizes = [1, 255, 256, 257, 7919, 64];
    for config in configs {
        for options in clipped_and_scaled() {
            steps_match(config.clone(), options, &sizes, None);
        }
        // Multi-slab, 2D grid, and 2000 tensors.
        let options = StepOptions {
            clip: Clip::GlobalNorm {
                max_norm: 1.0,
                norm: Norm::L2,
            },
            ..Default::default()
        };
        steps_match(
            config.clone(),
            options,
            &[40_000, 3, 12_345],
            Some(16 * 1024),
        );
        let tiny: Vec<usize> = (0..2000).map(|i| 1 + i % 5).collect();
        steps_match(config, options, &tiny, None);
    }
}

/// 100 steps on the GPU and on the CPU reference backend, with a decaying learning rate.
/// A rule with quantized states steps unclipped: the two backends' norms differ in their
/// last bits, and a clip coefficient one ulp apart may move a state by a whole code.
pub fn trajectory<C: ReferenceStep>(config: C, sizes: &[usize], slab: Option<u64>) {
    let clip = match C::QUANTIZED {
        true => Clip::None,
        false => Clip::GlobalNorm {
            max_norm: 5.0,
            norm: Norm::L2,
        },
    };
    let options = StepOptions {
        clip,
        grad_scale: 4.0,
        ..Default::default()
    };
    let n: usize = sizes.iter().sum();
    let mut runs = Vec::new();
    for ctx in [ctx(), Context::cpu()] {
        let (mut set, _) = set_with_grads(&ctx, sizes, slab, 1);
        set.upload_params(&data(n, 2, 1.0)).unwrap();
        let mut opt = config.build(&set).unwrap();
        let lr0 = opt.learning_rate();
        for step in 0..100u64 {
            set.upload_grads(&data(n, 100 + step, 2.0)).unwrap();
            opt.set_learning_rate(lr0 * 0.98f64.powi(step as i32))
                .unwrap();
            opt.step(&mut set, &options).unwrap();
        }
        assert_eq!(opt.states().step_count().unwrap(), 100);
        runs.push(set.download_params().unwrap());
    }
    let what = format!("{config:?}: 100 steps, GPU vs CPU");
    assert_close(
        &runs[0],
        &runs[1],
        f64::from(config.trajectory_rel()),
        TRAJECTORY_FLOOR,
        &what,
    );
}
