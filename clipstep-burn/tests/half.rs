//! f16 and bf16 burn models: the adapter's step is clipstep's own mixed-precision step (f32
//! master weights, their rounding written into the model) on the same values, bit for bit;
//! updates smaller than the 16-bit rounding step accumulate in the master weights; a clone of
//! the model alive at a step keeps its values; a load restarts the master weights from the
//! model's values.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{bf16, f16, DType, Device, Tensor, TensorCreationOptions, TensorData};
use clipstep::{
    AdamW, AdamWConfig, ArenaOptions, Clip, Context, Dtype, Norm, Optimizer, ParamSet, StepOptions,
    TensorSpec,
};
use clipstep_burn::{shared_device, BurnOptimizer};
use std::sync::OnceLock;

mod common;

use common::values;

/// `x·w + b`, in 16 bits. Odd sizes: each tensor's last 32-bit word is half padding.
#[derive(Module, Debug)]
struct Affine {
    w: Param<Tensor<2>>,
    b: Param<Tensor<1>>,
}

const IN: usize = 7;
const OUT: usize = 33;

/// The shared device, once per test binary (cubecl registers it globally).
fn device() -> (Context, Device) {
    static SHARED: OnceLock<(Context, Device)> = OnceLock::new();
    SHARED
        .get_or_init(|| shared_device().expect("a wgpu adapter: install mesa-vulkan-drivers"))
        .clone()
}

fn burn_dtype(dtype: Dtype) -> DType {
    match dtype {
        Dtype::F16 => DType::F16,
        Dtype::Bf16 => DType::BF16,
        Dtype::F32 => DType::F32,
    }
}

/// `x` as a burn tensor of `dtype` (converted on the host: no burn kernel runs, so bf16
/// works where the adapter's shaders have no bf16 arithmetic).
fn tensor_of<const N: usize>(
    device: &Device, x: Vec<f32>, shape: [usize; N], dtype: Dtype,
) -> Tensor<N> {
    let options = TensorCreationOptions::new(device.clone()).with_dtype(burn_dtype(dtype));
    Tensor::from_data(TensorData::new(x, shape), options)
}

/// A 16-bit tensor's bit patterns.
fn bits<const N: usize>(t: Tensor<N>) -> Vec<u16> {
    let data = t.into_data();
    match data.dtype() {
        DType::F16 => data
            .try_to_vec::<f16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        DType::BF16 => data
            .try_to_vec::<bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        other => panic!("not a 16-bit tensor: {other:?}"),
    }
}

/// 16-bit bit patterns widened to f32 (exact).
fn widen(bits: &[u16], dtype: Dtype) -> Vec<f32> {
    bits.iter()
        .map(|&b| match dtype {
            Dtype::F16 => f16::from_bits(b).to_f32(),
            _ => bf16::from_bits(b).to_f32(),
        })
        .collect()
}

/// Parameters in ±[1, 2): there a 16-bit rounding step is 2⁻¹⁰ (f16) or 2⁻⁷ (bf16).
fn model(device: &Device, dtype: Dtype) -> Affine {
    let away = |x: Vec<f32>| {
        x.into_iter()
            .map(|v| v.signum() * (1.0 + v.abs()))
            .collect()
    };
    Affine {
        w: Param::from_tensor(tensor_of(
            device,
            away(values(IN * OUT, 1, 1.0)),
            [IN, OUT],
            dtype,
        )),
        b: Param::from_tensor(tensor_of(device, away(values(OUT, 2, 1.0)), [OUT], dtype)),
    }
}

/// Gradients for `model`, `scale` times a fixed pattern, as burn's backward would give them
/// (16-bit tensors of the inner backend).
fn grads_for(model: &Affine, device: &Device, dtype: Dtype, scale: f32) -> GradientsParams {
    let mut grads = GradientsParams::new();
    let w = tensor_of(device, values(IN * OUT, 3, scale), [IN, OUT], dtype);
    let b = tensor_of(device, values(OUT, 4, scale), [OUT], dtype);
    grads.register(model.w.id, w.inner());
    grads.register(model.b.id, b.inner());
    grads
}

/// Gradients of the mean squared error of `x·w + b` against a fixed target, from burn's
/// backward pass in the model's 16-bit type (its matmul included).
fn grads_of_loss(model: &Affine, device: &Device, dtype: Dtype) -> GradientsParams {
    let x = tensor_of(device, values(16 * IN, 5, 1.0), [16, IN], dtype);
    let y = tensor_of(device, values(16 * OUT, 6, 1.0), [16, OUT], dtype);
    let out = x.matmul(model.w.val()) + model.b.val().unsqueeze();
    let loss = (out - y).powi_scalar(2).mean();
    GradientsParams::from_grads(loss.backward(), model)
}

/// The model's parameters as bit patterns, `(w, b)`.
fn model_bits(model: &Affine) -> [Vec<u16>; 2] {
    [bits(model.w.val()), bits(model.b.val())]
}

/// clipstep's own mixed-precision set (f32 master weights) on the shared device, at the
/// model's values.
fn native_set(ctx: &Context, model: &Affine, dtype: Dtype) -> ParamSet {
    let specs = [
        TensorSpec::new("w", [IN, OUT]).with_dtype(dtype),
        TensorSpec::new("b", [OUT]).with_dtype(dtype),
    ];
    let mut set = ParamSet::new(ctx, &specs, ArenaOptions::mixed(dtype)).unwrap();
    let [w, b] = model_bits(model);
    set.upload_param("w", &widen(&w, dtype)).unwrap();
    set.upload_param("b", &widen(&b, dtype)).unwrap();
    set
}

/// Clipped AdamW at learning rate `lr`: the adapter on a 16-bit burn model against clipstep's
/// mixed-precision set fed the same gradient bits (burn's `backward`, or fixed ones), for
/// `steps` steps (a clone of the model alive at step 3); the model's bits equal the set's
/// 16-bit copy at every step.
fn follows_clipsteps_mixed_set(
    dtype: Dtype, lr: f64, steps: usize, backward: bool,
) -> (Affine, Affine) {
    let (ctx, device) = device();
    let config = AdamWConfig {
        lr,
        weight_decay: 0.0,
        ..Default::default()
    };
    let options = StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    };
    let init = model(&device, dtype);
    let mut model = init.clone();
    let mut opt = BurnOptimizer::adamw(&ctx, config).with_options(options);
    let mut set = native_set(&ctx, &model, dtype);
    let mut native = AdamW::new(&set, config).unwrap();
    for step in 0..steps {
        let grads = match backward {
            true => grads_of_loss(&model, &device, dtype),
            false => grads_for(&model, &device, dtype, 0.5),
        };
        let [gw, gb] = [
            bits(grads.get::<2>(model.w.id).unwrap()),
            bits(grads.get::<1>(model.b.id).unwrap()),
        ];
        set.upload_grad_bits("w", &gw).unwrap();
        set.upload_grad_bits("b", &gb).unwrap();
        native.step(&mut set, &options).unwrap();
        let clone = (step == 3).then(|| (model.clone(), model_bits(&model)));
        model = opt.step(lr, model, grads).unwrap();
        let [w, b] = model_bits(&model);
        assert_eq!(
            w,
            set.download_param_bits("w").unwrap(),
            "{dtype:?} step {step}: w"
        );
        assert_eq!(
            b,
            set.download_param_bits("b").unwrap(),
            "{dtype:?} step {step}: b"
        );
        if let Some((clone, before)) = clone {
            assert_eq!(
                model_bits(&clone),
                before,
                "{dtype:?}: the clone keeps its values"
            );
        }
    }
    assert!(
        !opt.gradients_in_place(),
        "16-bit gradients are copied into the set"
    );
    assert_eq!(opt.builds(), 1, "a clone costs a rebind, not a rebuild");
    (init, model)
}

/// Every update is below half a rounding step of the parameters (all in ±[1, 2)), so a
/// 16-bit update in place (burn's AdamW on an f16 model) would round each back to where it
/// was; with master weights they accumulate, and most parameters move.
fn assert_updates_accumulate(init: &Affine, trained: &Affine, dtype: Dtype) {
    let moved = |a: Vec<u16>, b: Vec<u16>| a.iter().zip(&b).filter(|(x, y)| x != y).count();
    let [w0, b0] = model_bits(init);
    let [w1, b1] = model_bits(trained);
    let (moved, total) = (moved(w0, w1) + moved(b0, b1), IN * OUT + OUT);
    assert!(
        moved * 2 > total,
        "{dtype:?}: only {moved} of {total} parameters moved"
    );
}

/// An f16 model trained through burn's f16 forward and backward passes.
#[test]
fn f16_model_steps_as_clipsteps_mixed_set() {
    // lr 2⁻¹² < half of f16's step 2⁻¹⁰ at [1, 2); 12 steps move each parameter ~3 steps.
    let (init, trained) = follows_clipsteps_mixed_set(Dtype::F16, 2f64.powi(-12), 12, true);
    assert_updates_accumulate(&init, &trained, Dtype::F16);
}

/// A bf16 model, on fixed gradients (lavapipe runs no bf16 matmul).
#[test]
fn bf16_model_steps_as_clipsteps_mixed_set() {
    // lr 2⁻⁹ < half of bf16's step 2⁻⁷ at [1, 2); 12 steps move each parameter ~3 steps.
    let (init, trained) = follows_clipsteps_mixed_set(Dtype::Bf16, 2f64.powi(-9), 12, false);
    assert_updates_accumulate(&init, &trained, Dtype::Bf16);
}

/// A saved state loaded into a fresh optimizer continues the run with master weights started
/// again from the model's 16-bit values (they are not in the checkpoint): equal, bit for bit,
/// to the native set whose master weights are reset to its 16-bit copy at the same point.
/// `restart_master_weights` after the model changed outside the optimizer does the same.
#[test]
fn a_load_or_a_restart_starts_the_master_weights_from_the_model() {
    let (ctx, device) = device();
    let dtype = Dtype::F16;
    let config = AdamWConfig {
        lr: 1e-3,
        ..Default::default()
    };
    let options = StepOptions::default();
    let mut model = model(&device, dtype);
    let mut set = native_set(&ctx, &model, dtype);
    let mut native = AdamW::new(&set, config).unwrap();
    let mut opt = BurnOptimizer::adamw(&ctx, config);
    let mut step = |opt: &mut BurnOptimizer, model: Affine, set: &mut ParamSet| {
        let grads = grads_for(&model, &device, dtype, 0.5);
        set.upload_grad_bits("w", &bits(grads.get::<2>(model.w.id).unwrap()))
            .unwrap();
        set.upload_grad_bits("b", &bits(grads.get::<1>(model.b.id).unwrap()))
            .unwrap();
        native.step(set, &options).unwrap();
        let model = opt.step(config.lr, model, grads).unwrap();
        let [w, b] = model_bits(&model);
        assert_eq!(w, set.download_param_bits("w").unwrap());
        assert_eq!(b, set.download_param_bits("b").unwrap());
        model
    };
    let restart = |set: &mut ParamSet| {
        for name in ["w", "b"] {
            let copy = set.download_param_bits(name).unwrap();
            set.upload_param(name, &widen(&copy, dtype)).unwrap();
        }
    };
    for _ in 0..3 {
        model = step(&mut opt, model, &mut set);
    }
    let saved = opt.save().unwrap();
    let mut resumed = BurnOptimizer::adamw(&ctx, config);
    resumed.load(&model, &saved).unwrap();
    restart(&mut set);
    for _ in 0..3 {
        model = step(&mut resumed, model, &mut set);
    }

    // The model changed outside the optimizer: b set to 1.5 everywhere.
    let b = tensor_of(&device, vec![1.5; OUT], [OUT], dtype);
    model.b = Param::initialized(model.b.id, b);
    resumed.restart_master_weights();
    set.upload_param("b", &[1.5; OUT]).unwrap();
    restart(&mut set);
    for _ in 0..2 {
        model = step(&mut resumed, model, &mut set);
    }
}
