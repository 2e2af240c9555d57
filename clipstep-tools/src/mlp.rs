//! The two-layer MLP (4 → 16 tanh → 1) the training examples train (`train_on_gpu` in f32,
//! `train_mixed` in bf16 and f16): its data, its tensors, its optimizer, its WGSL forward
//! and backward passes (which write gradients straight into clipstep's gradient arena), its
//! device buffers, and the f32 training loop on the GPU.

use std::error::Error;
use std::path::PathBuf;

use clipstep::AdamW;
use clipstep::{AdamWConfig, Clip, Context, Norm, Optimizer, ParamSet, StepOptions, TensorSpec};

use crate::gpu;

/// The training examples' command-line options.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Where the charts and the measured curves (JSON) go.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// Read the loss back every this many steps.
    #[arg(long, default_value_t = 20)]
    pub log_every: usize,
}

/// Samples.
pub const N: usize = 256;
/// Inputs.
pub const D: usize = 4;
/// Hidden units.
pub const H: usize = 16;
/// Parameters: w1, b1, w2, b2.
pub const PARAMS: usize = H * D + H + H + 1;

/// The head of the f32 model's shader (`train_mixed` has its own, for 16-bit parameters):
/// its `Dims`, its parameters (binding 0) and `param(k)`.
pub const HEAD: &str = r#"
struct Dims { n: u32, d: u32, h: u32, w1: u32, b1: u32, w2: u32, b2: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> params: array<f32>;

// Element k of the parameter slab.
fn param(k: u32) -> f32 {
    return params[k];
}
"#;

/// Forward: one invocation per sample. Backward: one invocation per parameter, summing
/// over the batch in order (deterministic, no atomics), into the f32 `grads` binding. Both
/// index the parameter and gradient slabs with the element offsets clipstep gave each
/// tensor, the parameters through the head's `param(k)`; the head also declares `dims`,
/// `Dims` and binding 0 (`train_mixed` has its own head); the passes declare the model's
/// other buffers, bindings 1 to 7.
pub const PASSES: &str = r#"
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(4) var<storage, read_write> resid: array<f32>;
@group(0) @binding(5) var<uniform> dims: Dims;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;
@group(0) @binding(7) var<storage, read_write> loss: array<f32>;

// y_n = b2 + Σ_j w2_j · tanh(b1_j + Σ_i w1_ji · x_ni);   resid_n = y_n − t_n
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = id.x;
    if n >= dims.n { return; }
    var y = param(dims.b2);
    for (var j = 0u; j < dims.h; j++) {
        var a = param(dims.b1 + j);
        for (var i = 0u; i < dims.d; i++) {
            a += param(dims.w1 + j * dims.d + i) * x[n * dims.d + i];
        }
        let hj = tanh(a);
        hidden[n * dims.h + j] = hj;
        y += param(dims.w2 + j) * hj;
    }
    resid[n] = y - t[n];
}

// L = (1/N) Σ_n resid_n²;  each invocation writes one ∂L/∂θ into clipstep's gradient arena.
@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    let hd = dims.h * dims.d;
    if k >= hd + 2u * dims.h + 1u { return; }
    var g = 0.0;
    if k < hd {
        let j = k / dims.d;
        let i = k % dims.d;
        for (var n = 0u; n < dims.n; n++) {
            let hj = hidden[n * dims.h + j];
            g += resid[n] * param(dims.w2 + j) * (1.0 - hj * hj) * x[n * dims.d + i];
        }
        grads[dims.w1 + k] = 2.0 * g / f32(dims.n);
    } else if k < hd + dims.h {
        let j = k - hd;
        for (var n = 0u; n < dims.n; n++) {
            let hj = hidden[n * dims.h + j];
            g += resid[n] * param(dims.w2 + j) * (1.0 - hj * hj);
        }
        grads[dims.b1 + j] = 2.0 * g / f32(dims.n);
    } else if k < hd + 2u * dims.h {
        let j = k - hd - dims.h;
        for (var n = 0u; n < dims.n; n++) {
            g += resid[n] * hidden[n * dims.h + j];
        }
        grads[dims.w2 + j] = 2.0 * g / f32(dims.n);
    } else {
        var l = 0.0;
        for (var n = 0u; n < dims.n; n++) {
            g += resid[n];
            l += resid[n] * resid[n];
        }
        grads[dims.b2] = 2.0 * g / f32(dims.n);
        loss[0] = l / f32(dims.n);
    }
}
"#;

/// The model's tensors.
pub fn specs() -> Vec<TensorSpec> {
    vec![
        TensorSpec::new("w1", [H, D]),
        TensorSpec::new("b1", [H]),
        TensorSpec::new("w2", [H]),
        TensorSpec::new("b2", [1]),
    ]
}

/// Inputs in [−1, 1), targets t = sin(2·x0) + 0.5·x1·x2 − 0.3·x3, initial parameters.
pub fn data() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = crate::harness::sample_data(N * D, 3, 1.0);
    let t = (0..N)
        .map(|n| {
            let r = &x[n * D..(n + 1) * D];
            (2.0 * r[0]).sin() + 0.5 * r[1] * r[2] - 0.3 * r[3]
        })
        .collect();
    let init = crate::harness::sample_data(PARAMS, 4, 0.5);
    (x, t, init)
}

/// The step's options: a global-norm clip at 1.
pub fn options() -> StepOptions {
    StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    }
}

/// The optimizer's hyperparameters.
pub fn config() -> AdamWConfig {
    AdamWConfig {
        lr: 0.02,
        weight_decay: 1e-4,
        ..Default::default()
    }
}

/// (step, loss) pairs of one run.
pub type Curve = Vec<(usize, f32)>;

/// The model's sizes and each tensor's element offset in its slab, the head of both
/// shaders' `Dims`: `[N, D, H, w1, b1, w2, b2]`, for a slab of `element_bytes`-byte
/// elements (4: f32; 2: bf16 or f16).
pub fn dims_head(set: &ParamSet, element_bytes: u64) -> clipstep::Result<[u32; 7]> {
    let at = |name: &str| -> clipstep::Result<u32> {
        let views = set.param_views(name)?;
        assert_eq!(views.len(), 1, "a small model fits one slab");
        Ok((views[0].offset / element_bytes) as u32)
    };
    Ok([
        N as u32,
        D as u32,
        H as u32,
        at("w1")?,
        at("b1")?,
        at("w2")?,
        at("b2")?,
    ])
}

/// The MLP's device buffers besides its parameters and gradients: inputs, targets, the
/// hidden activations and residuals the backward pass reads, the loss, the `Dims` uniform.
pub struct MlpBuffers {
    pub x: wgpu::Buffer,
    pub t: wgpu::Buffer,
    pub hidden: wgpu::Buffer,
    pub resid: wgpu::Buffer,
    pub loss: wgpu::Buffer,
    pub dims: wgpu::Buffer,
}

impl MlpBuffers {
    pub fn new(device: &wgpu::Device, x: &[f32], t: &[f32], dims: &[u32]) -> MlpBuffers {
        use gpu::{storage, uniform};
        MlpBuffers {
            x: storage(device, "x", x),
            t: storage(device, "t", t),
            hidden: storage(device, "hidden", &vec![0.0; N * H]),
            resid: storage(device, "resid", &vec![0.0; N]),
            loss: storage(device, "loss", &[0.0]),
            dims: uniform(device, "dims", dims),
        }
    }

    /// The forward pass's bind group over `params`.
    pub fn forward(
        &self, device: &wgpu::Device, pipeline: &wgpu::ComputePipeline, params: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        let buffers = [
            (0, params),
            (1, &self.x),
            (2, &self.t),
            (3, &self.hidden),
            (4, &self.resid),
            (5, &self.dims),
        ];
        gpu::bind_group(device, pipeline, &buffers)
    }

    /// The backward pass's bind group: it reads `params`, writes `grads` and the loss.
    pub fn backward(
        &self, device: &wgpu::Device, pipeline: &wgpu::ComputePipeline, params: &wgpu::Buffer,
        grads: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        let buffers = [
            (0, params),
            (1, &self.x),
            (3, &self.hidden),
            (4, &self.resid),
            (5, &self.dims),
            (6, grads),
            (7, &self.loss),
        ];
        gpu::bind_group(device, pipeline, &buffers)
    }
}

/// The training loop on the GPU: one command encoder per step, a host read every `log_every`.
pub fn train_gpu(ctx: &Context, steps: usize, log_every: usize) -> Result<Curve, Box<dyn Error>> {
    let (device, queue) = ctx
        .device_queue()
        .ok_or("this example needs a GPU adapter")?;
    let (x, t, init) = data();
    let mut set = ctx.param_set(&specs())?;
    set.upload_params(&init)?;
    let mut opt = AdamW::new(&set, config())?;

    let shader = format!("{HEAD}{PASSES}");
    let pipelines = gpu::pipelines(device, &shader, &["forward", "backward"]);
    // The parameter and gradient slabs: clipstep's buffers, bound whole.
    let params_buf = set.param_views("w1")?[0].buffer.clone();
    let grads_buf = set.grad_views("w1")?[0].buffer.clone();
    let mlp = MlpBuffers::new(
        device,
        &x,
        &t,
        &[dims_head(&set, 4)?.as_slice(), &[0]].concat(),
    );
    let forward = mlp.forward(device, &pipelines[0], &params_buf);
    let backward = mlp.backward(device, &pipelines[1], &params_buf, &grads_buf);
    let dispatches = [
        (&pipelines[0], &forward, N.div_ceil(64) as u32),
        (&pipelines[1], &backward, PARAMS.div_ceil(64) as u32),
    ];
    let mut curve = Vec::new();
    gpu::train(
        device,
        queue,
        &dispatches,
        &mlp.loss,
        steps,
        log_every,
        |encoder| Ok(opt.encode_step(encoder, &mut set, &options())?),
        |step, value, _| {
            curve.push((step, value));
            Ok(())
        },
    )?;
    Ok(curve)
}
