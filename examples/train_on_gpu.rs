//! Training entirely on the GPU: a two-layer MLP (4 → 16 tanh → 1) regressing a smooth
//! function of its inputs. Forward and backward passes are this example's own WGSL
//! kernels; the backward kernel writes gradients straight into clipstep's gradient arena
//! (`ParamSet::grad_views`), and each training step — forward, backward, clipped AdamW —
//! is recorded into one command encoder. The loss is read back only every `--log-every`
//! steps. The same loop on the CPU reference shows the GPU run agrees.
//!
//! Writes `train_loss.png` to `--out` (default `out/`).
//!
//!     cargo run --release --example train_on_gpu

mod support;

/// The wgpu plumbing of the training examples (`train_mixed` reaches it through this one).
#[path = "support/gpu.rs"]
pub mod gpu;

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use clipstep::{
    AdamW, AdamWConfig, Clip, Context, Norm, Optimizer, ParamSet, StepOptions, TensorSpec,
};

/// Command-line options.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Where the loss curve goes.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// Read the loss back every this many steps.
    #[arg(long, default_value_t = 20)]
    pub log_every: usize,
}

pub const N: usize = 256; // samples
pub const D: usize = 4; // inputs
pub const H: usize = 16; // hidden units
pub const PARAMS: usize = H * D + H + H + 1;

/// The head of the f32 model's shader: its `Dims`, its bindings, and `param(k)`.
const HEAD: &str = r#"
struct Dims { n: u32, d: u32, h: u32, w1: u32, b1: u32, w2: u32, b2: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(4) var<storage, read_write> resid: array<f32>;
@group(0) @binding(5) var<uniform> dims: Dims;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;
@group(0) @binding(7) var<storage, read_write> loss: array<f32>;

// Element k of the parameter slab.
fn param(k: u32) -> f32 {
    return params[k];
}
"#;

/// Forward: one invocation per sample. Backward: one invocation per parameter, summing
/// over the batch in order (deterministic, no atomics), into the f32 `grads` binding. Both
/// index the parameter and gradient slabs with the element offsets clipstep gave each
/// tensor, the parameters through the head's `param(k)`; the head also declares `dims`,
/// `x`, `t`, `hidden`, `resid`, `grads` and `loss` (`train_mixed` has its own head).
pub const PASSES: &str = r#"
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
    let x = support::harness::sample_data(N * D, 3, 1.0);
    let t = (0..N)
        .map(|n| {
            let r = &x[n * D..(n + 1) * D];
            (2.0 * r[0]).sin() + 0.5 * r[1] * r[2] - 0.3 * r[3]
        })
        .collect();
    let init = support::harness::sample_data(PARAMS, 4, 0.5);
    (x, t, init)
}

pub fn options() -> StepOptions {
    StepOptions {
        clip: Clip::GlobalNorm {
            max_norm: 1.0,
            norm: Norm::L2,
        },
        ..Default::default()
    }
}

pub fn config() -> AdamWConfig {
    AdamWConfig {
        lr: 0.02,
        weight_decay: 1e-4,
        ..Default::default()
    }
}

/// (step, loss) pairs of one run.
pub type Curve = Vec<(usize, f32)>;

/// The element offset of each tensor in its slab, as the shader's `Dims`.
fn dims(set: &ParamSet) -> clipstep::Result<[u32; 8]> {
    let at = |name: &str| -> clipstep::Result<u32> {
        let views = set.param_views(name)?;
        assert_eq!(views.len(), 1, "a small model fits one slab");
        Ok((views[0].offset / 4) as u32)
    };
    Ok([
        N as u32,
        D as u32,
        H as u32,
        at("w1")?,
        at("b1")?,
        at("w2")?,
        at("b2")?,
        0,
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
        &self,
        device: &wgpu::Device,
        pipeline: &wgpu::ComputePipeline,
        params: &wgpu::Buffer,
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
        &self,
        device: &wgpu::Device,
        pipeline: &wgpu::ComputePipeline,
        params: &wgpu::Buffer,
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
pub fn train_gpu(ctx: &Context, args: &Args) -> Result<Curve, Box<dyn Error>> {
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
    let mlp = MlpBuffers::new(device, &x, &t, &dims(&set)?);
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
        args.steps,
        args.log_every,
        |encoder| Ok(opt.encode_step(encoder, &mut set, &options())?),
        |step, value, _| {
            curve.push((step, value));
            Ok(())
        },
    )?;
    Ok(curve)
}

/// The same model and loop on the CPU reference, with the forward and backward passes
/// written in Rust in the shader's order of operations.
pub fn train_cpu(args: &Args) -> clipstep::Result<Curve> {
    let (x, t, init) = data();
    let ctx = Context::cpu();
    let mut set = ctx.param_set(&specs())?;
    set.upload_params(&init)?;
    let mut opt = AdamW::new(&set, config())?;
    let mut curve = Vec::new();
    for step in 0..args.steps {
        let p = set.download_params()?;
        let (w1, b1, w2, b2) = (
            &p[..H * D],
            &p[H * D..H * D + H],
            &p[H * D + H..H * D + 2 * H],
            p[PARAMS - 1],
        );
        let mut hidden = vec![0.0f32; N * H];
        let mut resid = vec![0.0f32; N];
        for n in 0..N {
            let mut y = b2;
            for j in 0..H {
                let mut a = b1[j];
                for i in 0..D {
                    a += w1[j * D + i] * x[n * D + i];
                }
                hidden[n * H + j] = a.tanh();
                y += w2[j] * hidden[n * H + j];
            }
            resid[n] = y - t[n];
        }
        let mut g = vec![0.0f32; PARAMS];
        for j in 0..H {
            for i in 0..D {
                let mut s = 0.0;
                for n in 0..N {
                    let hj = hidden[n * H + j];
                    s += resid[n] * w2[j] * (1.0 - hj * hj) * x[n * D + i];
                }
                g[j * D + i] = 2.0 * s / N as f32;
            }
            let (mut sb, mut sw) = (0.0, 0.0);
            for n in 0..N {
                let hj = hidden[n * H + j];
                sb += resid[n] * w2[j] * (1.0 - hj * hj);
                sw += resid[n] * hj;
            }
            g[H * D + j] = 2.0 * sb / N as f32;
            g[H * D + H + j] = 2.0 * sw / N as f32;
        }
        let (sr, loss) = resid
            .iter()
            .fold((0.0, 0.0), |(s, l), r| (s + r, l + r * r));
        g[PARAMS - 1] = 2.0 * sr / N as f32;
        set.upload_grads(&g)?;
        opt.step(&mut set, &options())?;
        if step % args.log_every == 0 || step + 1 == args.steps {
            curve.push((step, loss / N as f32));
        }
    }
    Ok(curve)
}

/// Both runs: (GPU, CPU reference).
pub fn run(args: &Args) -> Result<(Curve, Curve), Box<dyn Error>> {
    Ok((train_gpu(&Context::new()?, args)?, train_cpu(args)?))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    println!("adapter: {}", Context::new()?.describe());
    let (gpu, cpu) = run(&args)?;
    println!(
        "{:>6} {:>12} {:>14}",
        "step", "loss (GPU)", "loss (CPU ref)"
    );
    let mut worst = 0.0f32;
    for (&(s, g), &(_, c)) in gpu.iter().zip(&cpu) {
        println!("{s:>6} {g:>12.6} {c:>14.6}");
        worst = worst.max((g - c).abs() / c.abs().max(1e-6));
    }
    println!("largest relative difference between the two loss curves: {worst:.2e}");
    let series = |label: &str, curve: &Curve, color| support::Series {
        label: label.into(),
        color,
        points: curve
            .iter()
            .map(|&(s, l)| (s as f64, f64::from(l)))
            .collect(),
    };
    let chart = support::Chart {
        title: "Two-layer MLP trained on the GPU (clipped AdamW)",
        x_label: "step",
        y_label: "MSE loss (log scale)",
        log_y: true,
        threshold: None,
    };
    let path = support::out_dir(&args.out)?.join("train_loss.png");
    support::line_chart(
        &path,
        &chart,
        &[
            series("GPU (one encoder per step)", &gpu, support::shade(1, 0)),
            series("CPU reference", &cpu, support::shade(0, 2)),
        ],
    )?;
    println!("wrote {}", path.display());
    Ok(())
}
