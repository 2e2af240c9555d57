//! `clipstep bench`: each operation's achieved bandwidth (bytes the step must move ÷ time)
//! as a fraction of the same device's copy bandwidth, measured in the same run over the
//! same slabs. The step is memory-bound, so this is the number that matters. Public API
//! only. Two copies move the same bytes: a compute shader (what a kernel can reach on this
//! device) and the API's buffer copy (the driver's own: `vkCmdCopyBuffer`, a memcpy on
//! lavapipe); the roofline is the faster. Both are timed just before every run of every
//! operation, and each run's bandwidth is divided by theirs, so a noisy machine's drifts
//! cancel; the median of those ratios is reported with their range. The bar's ratios
//! between two operations (2,000 tensors over one, unfused over fused, ...) time the two
//! alternately instead, pair after pair.

use std::time::Instant;

mod compute;
pub use compute::{transformer_matrices, ComputeRate};

use serde::Serialize;

use clipstep::{
    Adafactor, AdafactorConfig, AdamW, AdamWConfig, ArenaOptions, BufferRange, Clip, Context,
    Dtype, Error, ExternalTensor, Nonfinite, Norm, Optimizer, ParamGroup, ParamSet, Result,
    RuleConfig, RuleVisitor, StepOptions, TensorSpec, Units,
};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Elements per set (default 1M, 16M, 64M).
    pub sizes: Vec<u64>,
    /// Tensors in the many-tensor set (default 2,000).
    pub many_tensors: usize,
    /// External tensors in the pooled-buffer sets (default 1,000).
    pub pooled_tensors: usize,
    /// Untimed runs before measuring a row, at least (and until [`MIN_WARM_SECONDS`]).
    pub warmup: u32,
    /// Seconds of back-to-back shader copies before each size's roofline, so a GPU's
    /// clocks have left idle before the first row is timed (0: none).
    pub warm_seconds: f64,
    /// Timed runs at least (more for a short operation, see [`MIN_TIMED_SECONDS`]); the
    /// median is reported.
    pub repeats: u32,
    /// Measure only the operations this selects (the copy roofline always runs): one or
    /// more `|`-separated alternatives, each a part of the name, or with a leading `=` the
    /// whole name (`"=AdamW + clip (fused)|AdamW8bit"`).
    pub only: Option<String>,
    /// Sides of the square f32 matrix products timed as GFLOP/s (default 256, 512, 1024).
    pub matmul_sizes: Vec<usize>,
    /// Layers and width of the transformer whose matrices Newton–Schulz and a Muon step
    /// are timed over (default 4 layers of width 256: 24 matrices, 3.1M elements).
    pub muon_model: (usize, usize),
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            sizes: vec![1 << 20, 16 << 20, 64 << 20],
            many_tensors: 2000,
            pooled_tensors: 1000,
            warmup: 2,
            warm_seconds: 1.0,
            repeats: 7,
            only: None,
            matmul_sizes: vec![256, 512, 1024],
            muon_model: (4, 256),
        }
    }
}

/// A row's (or a pair's) timed runs go on past `repeats` until the operation's own runs add
/// up to this much time, up to [`MAX_REPEAT_FACTOR`] × `repeats` runs: a 1 ms operation's
/// median stands on ~28 runs instead of 7, so one noisy stretch of the machine moves it
/// less (on lavapipe the 1M rows' ratios moved by 0.1 between two runs at 7).
pub const MIN_TIMED_SECONDS: f64 = 0.25;

/// The most timed runs of a row or pair, in units of `repeats`.
pub const MAX_REPEAT_FACTOR: u32 = 4;

/// A row's (or a pair's) untimed runs go on past `warmup` until this much wall time has
/// passed: a GPU left idle while the host built the row's set (an upload of 64M elements
/// takes a while) has lowered its clocks, and two runs of a 0.5 ms step do not bring them
/// back. A slow device's row stops at `warmup` runs.
pub const MIN_WARM_SECONDS: f64 = 0.05;

/// One operation at one size.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Operation.
    pub op: String,
    /// Elements.
    pub elements: u64,
    /// Tensors.
    pub tensors: usize,
    /// Bytes the operation must move (reads + writes of f32 arrays).
    pub bytes: u64,
    /// Median time (ms).
    pub median_ms: f64,
    /// Fastest run (ms).
    pub min_ms: f64,
    /// Slowest run (ms).
    pub max_ms: f64,
    /// `bytes / median` in GB/s (10^9 bytes).
    pub gb_per_s: f64,
    /// Median over the runs of (this run's bandwidth / the faster copy's, timed just before
    /// it): the roofline is re-measured before every run, so drifts of a noisy machine cancel.
    pub fraction_of_copy: f64,
    /// The smallest and largest of those per-run fractions: the spread.
    pub fraction_range: [f64; 2],
    /// The same median against the shader copy alone.
    pub fraction_of_shader_copy: f64,
}

/// Host time to record one step (the recording alone; steps are recorded four at a time,
/// then submitted and run, as steps in flight in a training loop).
#[derive(Clone, Debug, Serialize)]
pub struct EncodeCost {
    /// Tensors in the set.
    pub tensors: usize,
    /// Where they live: "own slabs", or the caller's pooled buffers.
    pub storage: String,
    /// Median (µs).
    pub median_us: f64,
    /// Fastest (µs).
    pub min_us: f64,
    /// Median of `CommandEncoder::finish` on the encoder holding one step (µs): wgpu 30
    /// validates and records the passes into the driver's command buffer there, so a
    /// caller's host time per step is this plus `median_us`.
    pub finish_median_us: f64,
}

/// The ratios the performance bar is stated in, per size. The fused step's fractions of
/// copy are medians over runs each divided by the copies timed just before it; every time
/// ratio between two operations is [`Paired`]: the two timed alternately, so a machine that
/// speeds up or slows down (a GPU's clocks, a noisy VM) changes neither.
#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// Elements.
    pub elements: u64,
    /// Fused clip + AdamW bandwidth over copy bandwidth (the faster copy).
    pub fused_adamw_fraction_of_copy: f64,
    /// The same over the shader copy's bandwidth.
    pub fused_adamw_fraction_of_shader_copy: f64,
    /// Unfused (norm, scale, update passes) time over fused time.
    pub fused_speedup_over_unfused: Paired,
    /// Time of the fused clipped AdamW step with bf16 gradients and parameters and f32
    /// master weights over the f32 step's (same elements: the time per element ratio).
    pub bf16_adamw_over_f32_time: Paired,
    /// Time of the same step with f16 gradients and parameters (f32 master weights) over
    /// the bf16 one: the same bytes, so 1 unless f16's conversions cost.
    pub f16_adamw_over_bf16_time: Paired,
    /// Time of the fused AdamW step over 2,000 tensors over one tensor of the same total.
    pub many_over_one_tensor_time: Paired,
    /// Time of the same 2,000-tensor step in 3 parameter groups (own lr and weight decay,
    /// one group out of the norm) over one group.
    pub three_groups_over_one_group_time: Paired,
    /// Time of a fused AdamW step over 1,000 external tensors in 3 pooled caller buffers
    /// (each holding its tensors' params and grads) over the same tensors in own slabs.
    pub pooled_over_own_slabs_time: Paired,
    /// The same with params in 3 pooled buffers and grads in 3 others.
    pub pooled_split_over_own_slabs_time: Paired,
}

/// A time ratio `t_b / t_a` between two operations timed alternately, one pair of runs
/// after another: the median over the pairs and the smallest and largest pair's ratio.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Paired {
    /// Median over the pairs.
    pub median: f64,
    /// Smallest pair's ratio.
    pub min: f64,
    /// Largest pair's ratio.
    pub max: f64,
}

impl Paired {
    /// Not measured (`--only` left an operation out): unknown, not made up.
    pub const UNKNOWN: Paired = Paired {
        median: f64::NAN,
        min: f64::NAN,
        max: f64::NAN,
    };
}

/// Everything `clipstep bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Adapter name.
    pub adapter: String,
    /// Backend.
    pub backend: String,
    /// "timestamp queries" or "wall clock".
    pub timing: String,
    /// All measurements.
    pub measurements: Vec<Measurement>,
    /// The bar's ratios.
    pub ratios: Vec<Ratios>,
    /// Host encode cost of one step.
    pub encode: Vec<EncodeCost>,
    /// The compute-bound rows: matrix products, Newton–Schulz and a Muon step.
    pub compute: Vec<ComputeRate>,
    /// Sizes left out because they did not fit the device, with the device's reason.
    pub skipped: Vec<String>,
    /// The device warm-up before each size's roofline.
    pub warm_up: Vec<WarmUp>,
}

/// The device warm-up before a size's roofline: shader copies of the size's set, back to
/// back, for [`BenchConfig::warm_seconds`]. A first copy much slower than the last is a
/// device that was idle (a GPU's clocks); the roofline and every row are timed after it.
#[derive(Clone, Debug, Serialize)]
pub struct WarmUp {
    /// Elements copied.
    pub elements: u64,
    /// Copies run.
    pub copies: u32,
    /// Wall time they took (s).
    pub seconds: f64,
    /// The first copy's time (ms).
    pub first_ms: f64,
    /// The last copy's time (ms).
    pub last_ms: f64,
}

/// GPU timing: timestamp queries around the recorded work when the device has them,
/// else wall clock around submit and completion.
struct Timer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
}

fn buffer(
    device: &wgpu::Device, label: &str, size: u64, usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage,
        mapped_at_creation: false,
    })
}

fn device_error(e: impl std::fmt::Display) -> Error {
    Error::Device(e.to_string())
}

impl Timer {
    fn new(ctx: &Context) -> Result<Timer> {
        let (device, queue) = ctx
            .device_queue()
            .ok_or(Error::NeedsGpu("clipstep bench"))?;
        let queries = device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| {
                let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("bench"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                });
                use wgpu::BufferUsages as U;
                let resolve = buffer(device, "timestamps", 16, U::QUERY_RESOLVE | U::COPY_SRC);
                (set, resolve)
            });
        Ok(Timer {
            device: device.clone(),
            queue: queue.clone(),
            queries,
        })
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&Default::default())
    }

    fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(drop)
            .map_err(device_error)
    }

    /// The two timestamps, read back.
    fn read_timestamps(&self, resolve: &wgpu::Buffer) -> Result<(u64, u64)> {
        use wgpu::BufferUsages as U;
        let staging = buffer(
            &self.device,
            "timestamps readback",
            16,
            U::MAP_READ | U::COPY_DST,
        );
        let mut encoder = self.encoder();
        encoder.copy_buffer_to_buffer(resolve, 0, &staging, 0, 16);
        self.queue.submit([encoder.finish()]);
        staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        self.wait()?;
        let bytes = staging
            .slice(..)
            .get_mapped_range()
            .map_err(device_error)?
            .to_vec();
        let t0 = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let t1 = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        Ok((t0, t1))
    }

    fn kind(&self) -> &'static str {
        if self.queries.is_some() {
            "timestamp queries"
        } else {
            "wall clock"
        }
    }

    /// An empty pass that writes timestamp `index` at its end.
    fn mark(&self, encoder: &mut wgpu::CommandEncoder, index: u32) {
        if let Some((set, _)) = &self.queries {
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timestamp"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: None,
                    end_of_pass_write_index: Some(index),
                }),
            });
        }
    }

    /// Seconds taken by the work `record` puts in one command buffer.
    fn time(&self, record: &mut dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()>) -> Result<f64> {
        self.wait()?;
        let mut encoder = self.encoder();
        self.mark(&mut encoder, 0);
        record(&mut encoder)?;
        self.mark(&mut encoder, 1);
        if let Some((set, resolve)) = &self.queries {
            encoder.resolve_query_set(set, 0..2, resolve, 0);
        }
        let start = Instant::now();
        self.queue.submit([encoder.finish()]);
        self.wait()?;
        let wall = start.elapsed().as_secs_f64();
        match &self.queries {
            Some((_, resolve)) => {
                let (t0, t1) = self.read_timestamps(resolve)?;
                let ns =
                    t1.saturating_sub(t0) as f64 * f64::from(self.queue.get_timestamp_period());
                Ok(if ns > 0.0 { ns * 1e-9 } else { wall })
            }
            None => Ok(wall),
        }
    }
}

/// The copy roofline: `dst ← src`, 8 bytes per element, with the same grid shape as the
/// elementwise kernels (256 invocations, 4 vec4s each, 2D past the grid limit).
const COPY_WGSL: &str = "
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let base = (wid.x + wid.y * nwg.x) * 1024u + lid;
    for (var j = 0u; j < 4u; j++) {
        let i = base + j * 256u;
        if i >= arrayLength(&src) {
            return;
        }
        dst[i] = src[i];
    }
}
";

/// Copy params → grads over every piece of tensor `t0` of `set` (one per slab).
struct Copy {
    pipeline: wgpu::ComputePipeline,
    groups: Vec<(wgpu::BindGroup, u32, u32)>,
    /// Per piece, the same bytes for the API's buffer copy.
    pieces: Vec<Piece>,
}

/// One piece of the copied tensor: where its bytes are read and written.
struct Piece {
    src: wgpu::Buffer,
    src_offset: u64,
    dst: wgpu::Buffer,
    dst_offset: u64,
    bytes: u64,
}

impl Copy {
    fn new(ctx: &Context, set: &ParamSet) -> Result<Copy> {
        let (device, _) = ctx
            .device_queue()
            .ok_or(Error::NeedsGpu("clipstep bench"))?;
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some("copy"),
            source: wgpu::ShaderSource::Wgsl(COPY_WGSL.into()),
        };
        // The checks clipstep compiles its kernels with (wgpu's, less the per-loop bounding
        // counter: src/kernels/shaders.rs), so the roofline pays what they pay.
        let checks = wgpu::ShaderRuntimeChecks {
            force_loop_bounding: false,
            ..wgpu::ShaderRuntimeChecks::checked()
        };
        // SAFETY: they leave out only loop bounding, and the copy's loop runs 4 times.
        let module = unsafe { device.create_shader_module_trusted(desc, checks) };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("copy"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let max = device.limits().max_compute_workgroups_per_dimension;
        let layout = pipeline.get_bind_group_layout(0);
        let (src, dst) = (set.param_views("t0")?, set.grad_views("t0")?);
        let groups = src
            .iter()
            .zip(&dst)
            .map(|(s, d)| {
                let bytes = wgpu::BufferSize::new((s.len * 4).next_multiple_of(16));
                fn binding<'a>(
                    v: &clipstep::TensorView<'a>, bytes: Option<wgpu::BufferSize>,
                ) -> wgpu::BindingResource<'a> {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: v.buffer,
                        offset: v.offset,
                        size: bytes,
                    })
                }
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("copy"),
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: binding(s, bytes),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: binding(d, bytes),
                        },
                    ],
                });
                let n = (s.len.div_ceil(4).div_ceil(1024)) as u32;
                let x = n.min(max).max(1);
                (group, x, n.div_ceil(x))
            })
            .collect();
        let pieces = src
            .iter()
            .zip(&dst)
            .map(|(s, d)| Piece {
                src: s.buffer.clone(),
                src_offset: s.offset,
                dst: d.buffer.clone(),
                dst_offset: d.offset,
                bytes: s.len * 4,
            })
            .collect();
        Ok(Copy {
            pipeline,
            groups,
            pieces,
        })
    }

    /// The same bytes through the API's buffer copy (`vkCmdCopyBuffer` on Vulkan): the
    /// driver's own copy, often faster than a shader's on a real GPU.
    fn encode_transfer(&self, encoder: &mut wgpu::CommandEncoder) {
        for p in &self.pieces {
            encoder.copy_buffer_to_buffer(&p.src, p.src_offset, &p.dst, p.dst_offset, p.bytes);
        }
    }

    fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&self.pipeline);
        for (group, x, y) in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
    }
}

fn set_of(ctx: &Context, elements: u64, tensors: usize) -> Result<ParamSet> {
    typed_set_of(ctx, elements, tensors, ArenaOptions::default())
}

/// [`set_of`] with `options` (a 16-bit set, with or without master weights).
fn typed_set_of(
    ctx: &Context, elements: u64, tensors: usize, options: ArenaOptions,
) -> Result<ParamSet> {
    let per = elements / tensors as u64;
    let specs: Vec<TensorSpec> = (0..tensors)
        .map(|i| {
            let n = if i + 1 == tensors {
                elements - per * (tensors as u64 - 1)
            } else {
                per
            };
            TensorSpec::new(format!("t{i}"), [n as usize])
        })
        .collect();
    let mut set = ParamSet::new(ctx, &specs, options)?;
    let n = elements as usize;
    let ramp: Vec<f32> = (0..n).map(|i| ((i % 1024) as f32 - 512.0) * 1e-3).collect();
    set.upload_params(&ramp)?;
    set.upload_grads(&ramp)?;
    Ok(set)
}

/// `tensors` external tensors of `elements` in total, sub-allocated like a framework pool
/// in `buffers` caller buffers (tensor i in buffer i mod `buffers`, each on the device's
/// storage alignment): params and grads in one buffer when `shared`, else grads in
/// `buffers` buffers of their own.
fn pooled_set_of(
    ctx: &Context, elements: u64, tensors: usize, buffers: usize, shared: bool,
) -> Result<ParamSet> {
    let (device, _) = ctx
        .device_queue()
        .ok_or(Error::NeedsGpu("pooled buffers"))?;
    let align = ctx
        .limits()
        .map_or(256, |l| u64::from(l.min_storage_buffer_offset_alignment));
    let per = elements / tensors as u64;
    let bytes = (per * 4).next_multiple_of(align);
    let per_buffer = tensors.div_ceil(buffers) as u64;
    let pool = |label: &str, roles: u64| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: per_buffer * bytes * roles,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    };
    let roles = if shared { 2 } else { 1 };
    let limit = ctx.limits().map_or(u64::MAX, |l| l.max_buffer_size);
    if per_buffer * bytes * roles > limit {
        return Err(Error::TooLarge {
            what: "a pooled caller buffer (bytes)".into(),
            size: per_buffer * bytes * roles,
            limit,
        });
    }
    // The pools in an out-of-memory scope: a pool the device cannot hold is a typed error
    // (the size is skipped), not an invalid buffer the set then rejects.
    let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let params: Vec<wgpu::Buffer> = (0..buffers).map(|_| pool("params pool", roles)).collect();
    let grads: Vec<wgpu::Buffer> = if shared {
        params.clone()
    } else {
        (0..buffers).map(|_| pool("grads pool", 1)).collect()
    };
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::OutOfMemory(format!(
            "the bench's pooled buffers: {e}"
        )));
    }
    let external = (0..tensors)
        .map(|i| {
            let (b, slot) = (i % buffers, (i / buffers) as u64);
            let grads_at = if shared { per_buffer + slot } else { slot };
            ExternalTensor {
                name: format!("t{i}"),
                shape: vec![per as usize],
                params: BufferRange {
                    buffer: params[b].clone(),
                    offset: slot * bytes,
                },
                grads: BufferRange {
                    buffer: grads[b].clone(),
                    offset: grads_at * bytes,
                },
            }
        })
        .collect();
    let options = ArenaOptions {
        external,
        ..Default::default()
    };
    let mut set = ParamSet::new(ctx, &[], options)?;
    let ramp: Vec<f32> = (0..set.numel())
        .map(|i| ((i % 1024) as f32 - 512.0) * 1e-3)
        .collect();
    set.upload_params(&ramp)?;
    set.upload_grads(&ramp)?;
    Ok(set)
}

/// The bench rows of the registered rules (all but AdamW, which has rows of its own): each
/// rule's usual configuration (its first example), a clipped fused step on the set.
struct RuleRows<'a, 'b> {
    bench: &'a mut Bench<'b>,
    set: &'a mut ParamSet,
    fused: StepOptions,
    result: Result<()>,
}

impl RuleVisitor for RuleRows<'_, '_> {
    fn visit<C: RuleConfig>(&mut self) {
        // A rule of matrices is compute-bound: its rows are `compute`'s, over matrices.
        let adamw = C::NAME == <AdamWConfig as clipstep::RuleDeclaration>::NAME;
        if self.result.is_err() || adamw || C::MATRICES {
            return;
        }
        let config = C::examples().remove(0);
        let pass = if C::TENSORWISE {
            "trust pass + update"
        } else {
            "fused"
        };
        let label = format!("{} + clip ({pass})", C::NAME);
        let bytes = config.bytes_per_element();
        self.result = config.build(self.set).and_then(|mut opt| {
            let fused = self.fused;
            self.bench
                .step(&label, self.set, &mut opt, bytes, fused)
                .map(|_| ())
        });
    }
}

struct Bench<'a> {
    timer: Timer,
    config: &'a BenchConfig,
    out: Vec<Measurement>,
    /// The shader copy and the API's buffer copy at the current size, both timed before
    /// every run of every operation.
    roofline: Option<Copy>,
    progress: &'a mut dyn FnMut(&str),
    /// Rows left out at some size, with the reason (a pool past the device's buffer size).
    skipped_rows: Vec<String>,
    /// The warm-up before each size's roofline.
    warm_up: Vec<WarmUp>,
}

impl Bench<'_> {
    /// Times `record`, each run just after a run of each copy; `shape` is (elements,
    /// tensors) of the set it works on. Returns the operation's time in units of the shader
    /// copy timed just before it (the median over the runs: what the ratios between operations
    /// are taken from, so that a drift of the machine between two operations cancels), or
    /// seconds for the copies themselves. NaN, and no row, when `--only` leaves the
    /// operation out.
    fn measure(
        &mut self, op: &str, shape: (u64, usize), bytes_per_elem: u64,
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<f64> {
        if self.left_out(op) {
            return Ok(f64::NAN);
        }
        let (elements, tensors) = shape;
        (self.progress)(&format!("{op} ({elements} elements, {tensors} tensors)"));
        self.warm(&mut |timer| timer.time(record).map(drop))?;
        let bytes = bytes_per_elem * elements;
        let (mut times, mut fractions, mut shader_fractions) = (vec![], vec![], vec![]);
        let mut timed = 0.0;
        while self.more_runs(times.len(), timed) {
            if let Some(copy) = &self.roofline {
                let t_shader = self.timer.time(&mut |enc| {
                    copy.encode(enc);
                    Ok(())
                })?;
                let t_transfer = self.timer.time(&mut |enc| {
                    copy.encode_transfer(enc);
                    Ok(())
                })?;
                let t = self.timer.time(record)?;
                let fraction = |t_copy: f64| (bytes as f64 / t) / ((8 * elements) as f64 / t_copy);
                fractions.push(fraction(t_shader.min(t_transfer)));
                shader_fractions.push(fraction(t_shader));
                times.push(t);
            } else {
                times.push(self.timer.time(record)?);
            }
            timed += times[times.len() - 1];
        }
        // `sorted_median` sorts: the ranges below are the first and last entries.
        let t = sorted_median(&mut times);
        let fraction = sorted_median(&mut fractions);
        let shader_fraction = sorted_median(&mut shader_fractions);
        // In units of the shader copy: on a CPU driver the buffer copy is a memcpy whose
        // time swings with the cache far more than any kernel's does.
        let in_copy_units = match shader_fractions.is_empty() {
            true => t,
            false => bytes_per_elem as f64 / (8.0 * shader_fraction),
        };
        let gb_per_s = bytes as f64 / t / 1e9;
        self.out.push(Measurement {
            op: op.to_string(),
            elements,
            tensors,
            bytes,
            median_ms: t * 1e3,
            min_ms: times[0] * 1e3,
            max_ms: times[times.len() - 1] * 1e3,
            gb_per_s,
            fraction_of_copy: fraction,
            fraction_range: match fractions.len() {
                0 => [1.0, 1.0],
                k => [fractions[0], fractions[k - 1]],
            },
            fraction_of_shader_copy: shader_fraction,
        });
        Ok(in_copy_units)
    }

    /// A row's untimed runs: `config.warmup` at least, then until [`MIN_WARM_SECONDS`] of
    /// wall time have passed.
    fn warm(&mut self, run: &mut dyn FnMut(&Timer) -> Result<()>) -> Result<()> {
        let start = Instant::now();
        let mut runs = 0;
        while runs < self.config.warmup
            || (runs > 0 && start.elapsed().as_secs_f64() < MIN_WARM_SECONDS)
        {
            run(&self.timer)?;
            runs += 1;
        }
        Ok(())
    }

    /// Shader copies of `copy`, back to back, for `config.warm_seconds` of wall time (at
    /// least one): the device leaves idle before the roofline is timed. Noted in the report.
    fn warm_device(&mut self, copy: &Copy, elements: u64) -> Result<()> {
        if self.config.warm_seconds <= 0.0 {
            return Ok(());
        }
        (self.progress)(&format!(
            "warming the device: shader copies of {elements} elements for {} s",
            self.config.warm_seconds
        ));
        let start = Instant::now();
        let mut times = Vec::new();
        while times.is_empty() || start.elapsed().as_secs_f64() < self.config.warm_seconds {
            times.push(self.timer.time(&mut |enc| {
                copy.encode(enc);
                Ok(())
            })?);
        }
        self.warm_up.push(WarmUp {
            elements,
            copies: times.len() as u32,
            seconds: start.elapsed().as_secs_f64(),
            first_ms: times[0] * 1e3,
            last_ms: times[times.len() - 1] * 1e3,
        });
        Ok(())
    }

    /// The copy roofline at this size, after warming the device: the shader copy and the
    /// buffer copy each measured, the faster kept (and reported again as "copy (roofline)").
    fn roofline(&mut self, ctx: &Context, set: &ParamSet) -> Result<()> {
        let shape = (set.numel(), 1);
        let copy = Copy::new(ctx, set)?;
        self.roofline = None;
        self.warm_device(&copy, set.numel())?;
        let shader = self.measure("copy (shader)", shape, 8, &mut |enc| {
            copy.encode(enc);
            Ok(())
        })?;
        let transfer = self.measure("copy (copy_buffer_to_buffer)", shape, 8, &mut |enc| {
            copy.encode_transfer(enc);
            Ok(())
        })?;
        let fastest = if transfer < shader { 1 } else { 2 };
        // Each copy as a fraction of the faster (medians: these two are not interleaved).
        let best = transfer.min(shader);
        let k = self.out.len();
        for m in &mut self.out[k - 2..] {
            m.fraction_of_copy = best / (m.median_ms * 1e-3);
            m.fraction_range = [m.fraction_of_copy; 2];
            m.fraction_of_shader_copy = shader / (m.median_ms * 1e-3);
        }
        let mut row = self.out[self.out.len() - fastest].clone();
        row.op = "copy (roofline)".into();
        self.out.push(row);
        self.roofline = Some(copy);
        Ok(())
    }

    /// Adafactor's clipped step on weights of 4,096 columns (`[n / 4096, 4096]`, at most
    /// 4,096 rows each): its factored path, a row and a column vector per weight. The
    /// registry's row steps the one-vector set, whose second moment is kept whole.
    fn adafactor_matrices(&mut self, ctx: &Context, n: u64, fused: StepOptions) -> Result<()> {
        let rows = (n / 4096).max(1) as usize;
        let specs: Vec<TensorSpec> = (0..rows.div_ceil(4096))
            .map(|k| TensorSpec::new(format!("w{k}"), [(rows - k * 4096).min(4096), 4096]))
            .collect();
        let mut set = ctx.param_set(&specs)?;
        let ramp: Vec<f32> = (0..rows * 4096)
            .map(|i| ((i % 1021) as f32 - 510.0) * 1e-3)
            .collect();
        set.upload_params(&ramp)?;
        set.upload_grads(&ramp)?;
        let config = <AdafactorConfig as clipstep::RuleDeclaration>::examples().remove(0);
        let bytes = config.bytes_per_element();
        let mut opt = Adafactor::new(&set, config)?;
        let label = "Adafactor + clip (factored, rows of 4096)";
        self.step(label, &mut set, &mut opt, bytes, fused)
            .map(|_| ())
    }

    /// Times a clipped step of `opt` on `set` as row `op` (`bytes` per element).
    fn step(
        &mut self, op: &str, set: &mut ParamSet, opt: &mut dyn Optimizer, bytes: u64,
        options: StepOptions,
    ) -> Result<f64> {
        let shape = (set.numel(), set.tensors().len());
        self.measure(op, shape, bytes, &mut |enc| {
            opt.encode_step(enc, set, &options).map(|_| ())
        })
    }
    /// The mixed-precision rows at `n` elements: fused clipped AdamW on 16-bit sets (bytes
    /// per element: the 16-bit gradient read by the norm and the update, 2 + 2; f32 master
    /// read and written, 8; f32 moments read and written, 16, or bf16, 8; the 16-bit copy
    /// written, 2; in place, the 16-bit parameters read and written, 4, and no master).
    /// Returns the first row's set (bf16 with f32 master weights), optimizer and label, and
    /// the last row's (f16 with f32 master weights): the two are then timed alternately.
    fn mixed_precision(
        &mut self, ctx: &Context, n: u64, fused: StepOptions,
    ) -> Result<[(ParamSet, AdamW, String); 2]> {
        let adamw = |set: &ParamSet, states: Dtype| {
            let names = set.tensors().iter().map(|t| t.name.clone());
            let groups = vec![ParamGroup::new(names, AdamWConfig::default())];
            AdamW::with_state_dtype(set, groups, states)
        };
        let rows = [
            (
                Dtype::Bf16,
                true,
                Dtype::F32,
                30,
                "bf16 grads + params, f32 master",
            ),
            (
                Dtype::Bf16,
                true,
                Dtype::Bf16,
                22,
                "bf16 grads + params, f32 master, bf16 moments",
            ),
            (
                Dtype::Bf16,
                false,
                Dtype::F32,
                24,
                "bf16 grads + params in place",
            ),
            (
                Dtype::F16,
                true,
                Dtype::F32,
                30,
                "f16 grads + params, f32 master",
            ),
        ];
        let (mut first, mut last) = (None, None);
        for (dtype, master, states, bytes, what) in rows {
            let options = ArenaOptions {
                dtype,
                master_weights: master,
                ..Default::default()
            };
            let mut set = typed_set_of(ctx, n, 1, options)?;
            let mut opt = adamw(&set, states)?;
            let label = format!("AdamW + clip (fused), {what}");
            self.step(&label, &mut set, &mut opt, bytes, fused)?;
            match (dtype, master, first.is_none()) {
                (_, _, true) => first = Some((set, opt, label)),
                (Dtype::F16, true, _) => last = Some((set, opt, label)),
                _ => {}
            }
        }
        match (first, last) {
            (Some(first), Some(last)) => Ok([first, last]),
            _ => unreachable!(
                "the rows above start with bf16 and end with f16, both with master weights"
            ),
        }
    }

    /// Every measurement at `n` elements; the bar's ratios at that size.
    fn size(&mut self, ctx: &Context, n: u64, fused: StepOptions) -> Result<Ratios> {
        let mut set = set_of(ctx, n, 1)?;
        self.roofline(ctx, &set)?;
        let shape = (n, 1);
        self.measure("global_norm (L2)", shape, 4, &mut |enc| {
            set.encode_global_norm(enc, Norm::L2).map(|_| ())
        })?;
        self.measure("clip_grad_norm (L2)", shape, 12, &mut |enc| {
            set.encode_clip_grad_norm(enc, 1e9, Norm::L2, Nonfinite::Propagate)
                .map(|_| ())
        })?;
        self.measure("clip_by_block_rms", shape, 12, &mut |enc| {
            set.encode_clip_by_block_rms(enc, 1e-3, Nonfinite::Propagate)
                .map(|_| ())
        })?;
        // Adaptive clipping of a [n / 1024, 1024] weight: one unit per row; it reads p and g,
        // then reads and writes g (16 bytes).
        // Weights of at most 4,096 rows (16 MiB), so none spans two slabs (AGC's limit).
        let rows = (n / 1024) as usize;
        let specs: Vec<TensorSpec> = (0..rows.div_ceil(4096))
            .map(|k| TensorSpec::new(format!("w{k}"), [(rows - k * 4096).min(4096), 1024]))
            .collect();
        let mut weight = ctx.param_set(&specs)?;
        let half: Vec<f32> = vec![0.5; rows * 1024];
        weight.upload_params(&half)?;
        weight.upload_grads(&half)?;
        self.measure(
            "clip_adaptive (rows of 1024)",
            ((rows * 1024) as u64, specs.len()),
            16,
            &mut |enc| weight.encode_clip_adaptive(enc, 0.01, 1e-3, Units::Leading),
        )?;
        drop(weight);
        self.measure("clip_grad_value", shape, 8, &mut |enc| {
            set.encode_clip_grad_value(enc, 1e9)
        })?;
        // Every registered rule but AdamW (the reference row, below), its usual config.
        let mut rules = RuleRows {
            bench: self,
            set: &mut set,
            fused,
            result: Ok(()),
        };
        clipstep::for_each_rule(&mut rules);
        rules.result?;
        self.adafactor_matrices(ctx, n, fused)?;
        let mut adamw = AdamW::new(&set, AdamWConfig::default())?;
        let fused_label = "AdamW + clip (fused)";
        let t_fused = self.step(fused_label, &mut set, &mut adamw, 32, fused)?;
        let (fraction, shader_fraction) = match (t_fused.is_nan(), self.out.last()) {
            (false, Some(m)) => (m.fraction_of_copy, m.fraction_of_shader_copy),
            _ => (f64::NAN, f64::NAN),
        };
        // Each bar ratio below times its two operations alternately (see `paired`); the
        // second operation's row is measured from the same recording first.
        let [(mut bf16, mut bf16_opt, bf16_label), (mut f16, mut f16_opt, f16_label)] =
            self.mixed_precision(ctx, n, fused)?;
        let bf16_over_f32 = self.paired(
            [fused_label, &bf16_label],
            &mut either_step([(&mut adamw, &mut set), (&mut bf16_opt, &mut bf16)], fused),
        )?;
        // The same bytes in f16 and bf16, alternately: a conversion's cost shows here, while
        // a row's own time also carries where its buffers landed and the device's clocks.
        let f16_over_bf16 = self.paired(
            [&bf16_label, &f16_label],
            &mut either_step(
                [(&mut bf16_opt, &mut bf16), (&mut f16_opt, &mut f16)],
                fused,
            ),
        )?;
        drop((f16_opt, f16, bf16_opt, bf16));
        let zero_nans = StepOptions {
            nonfinite: Nonfinite::ZeroNans,
            ..fused
        };
        let label = "AdamW + clip (fused), NaNs as 0";
        self.step(label, &mut set, &mut adamw, 32, zero_nans)?;
        // Unfused: norm pass, scale pass, then an AdamW pass that reads the clipped gradient.
        let mut unfused = AdamW::new(&set, AdamWConfig::default())?;
        let plain = StepOptions {
            nonfinite: Nonfinite::Propagate,
            ..Default::default()
        };
        let label = "AdamW + clip (unfused: norm, scale, update)";
        let mut both = |enc: &mut wgpu::CommandEncoder, k: usize| match k {
            0 => adamw.encode_step(enc, &mut set, &fused).map(|_| ()),
            _ => {
                set.encode_clip_grad_norm(enc, 1.0, Norm::L2, Nonfinite::Propagate)?;
                unfused.encode_step(enc, &mut set, &plain).map(|_| ())
            }
        };
        self.measure(label, shape, 40, &mut |enc| both(enc, 1))?;
        let unfused_over_fused = self.paired([fused_label, label], &mut both)?;
        drop(unfused);
        let tensors = self.config.many_tensors;
        let mut many = set_of(ctx, n, tensors)?;
        let mut one_group = AdamW::new(&many, AdamWConfig::default())?;
        let many_label = format!("AdamW + clip (fused), {tensors} tensors");
        let mut both = either_step([(&mut adamw, &mut set), (&mut one_group, &mut many)], fused);
        self.measure(&many_label, (n, tensors), 32, &mut |enc| both(enc, 1))?;
        let many_over_one = self.paired([fused_label, &many_label], &mut both)?;
        drop(both);
        drop(adamw);
        drop(set);
        let label = format!("AdamW + clip (fused), {tensors} tensors, 3 groups");
        let mut three = AdamW::with_groups(&many, three_groups(&many))?;
        let mut both = |enc: &mut wgpu::CommandEncoder, k: usize| {
            match k {
                0 => one_group.encode_step(enc, &mut many, &fused),
                _ => three.encode_step(enc, &mut many, &fused),
            }
            .map(|_| ())
        };
        self.measure(&label, (n, tensors), 32, &mut |enc| both(enc, 1))?;
        let three_over_one_group = self.paired([&many_label, &label], &mut both)?;
        drop(three);
        drop(one_group);
        drop(many);
        let k = self.config.pooled_tensors;
        let mut own = set_of(ctx, n - n % k as u64, k)?;
        let mut own_opt = AdamW::new(&own, AdamWConfig::default())?;
        let own_label = format!("AdamW + clip (fused), {k} tensors in own slabs");
        self.step(&own_label, &mut own, &mut own_opt, 32, fused)?;
        let mut pooled_over_own = Vec::new();
        for (shared, what) in [(true, "params + grads"), (false, "params, 3 for grads")] {
            let mut pooled = match pooled_set_of(ctx, n, k, 3, shared) {
                Ok(set) => set,
                // Three pools of this size pass the device's buffer limit or its memory:
                // the row is left out at this size (the other rows stand).
                Err(e @ (Error::TooLarge { .. } | Error::OutOfMemory(_))) => {
                    self.skipped_rows.push(format!(
                        "{n} elements, {k} tensors in 3 pooled buffers ({what}): {e}"
                    ));
                    pooled_over_own.push(Paired::UNKNOWN);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut opt = AdamW::new(&pooled, AdamWConfig::default())?;
            let label = format!("AdamW + clip (fused), {k} tensors in 3 pooled buffers ({what})");
            let shape = (pooled.numel(), pooled.tensors().len());
            let mut both = either_step([(&mut own_opt, &mut own), (&mut opt, &mut pooled)], fused);
            self.measure(&label, shape, 32, &mut |enc| both(enc, 1))?;
            pooled_over_own.push(self.paired([&own_label, &label], &mut both)?);
            drop(both);
        }
        Ok(Ratios {
            elements: n,
            fused_adamw_fraction_of_copy: fraction,
            fused_adamw_fraction_of_shader_copy: shader_fraction,
            fused_speedup_over_unfused: unfused_over_fused,
            bf16_adamw_over_f32_time: bf16_over_f32,
            f16_adamw_over_bf16_time: f16_over_bf16,
            many_over_one_tensor_time: many_over_one,
            three_groups_over_one_group_time: three_over_one_group,
            pooled_over_own_slabs_time: pooled_over_own[0],
            pooled_split_over_own_slabs_time: pooled_over_own[1],
        })
    }

    /// Whether `--only` leaves operation `op` out (the copies always run, [`selects`]).
    fn left_out(&self, op: &str) -> bool {
        self.config
            .only
            .as_ref()
            .is_some_and(|only| !op.starts_with("copy") && !selects(only, op))
    }

    /// Whether a row or pair with `runs` timed runs taking `timed` seconds in all needs
    /// another: `repeats` at least, then until [`MIN_TIMED_SECONDS`], at most
    /// [`MAX_REPEAT_FACTOR`] × `repeats`.
    fn more_runs(&self, runs: usize, timed: f64) -> bool {
        let min = self.config.repeats.max(1) as usize;
        runs < min || (timed < MIN_TIMED_SECONDS && runs < MAX_REPEAT_FACTOR as usize * min)
    }

    /// Times `record(encoder, 0)` and `record(encoder, 1)` alternately (after the warm-ups,
    /// `repeats` pairs or more, as [`Bench::more_runs`] says, each pair in the other order
    /// from the last) and returns the second's time over the first's: the median over the
    /// pairs, and their range. Two
    /// operations timed side by side see the same machine, so a drift between them (a
    /// GPU's clocks, a busy VM) cancels, which it does not between two rows timed minutes
    /// apart. Unknown (NaN) when `--only` leaves either operation out.
    fn paired(
        &mut self, ops: [&str; 2],
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder, usize) -> Result<()>,
    ) -> Result<Paired> {
        if ops.iter().any(|op| self.left_out(op)) {
            return Ok(Paired::UNKNOWN);
        }
        (self.progress)(&format!("{} over {}, alternately", ops[1], ops[0]));
        self.warm(&mut |timer| {
            for k in 0..2 {
                timer.time(&mut |enc| record(enc, k))?;
            }
            Ok(())
        })?;
        let (mut ratios, mut timed) = (Vec::new(), 0.0);
        while self.more_runs(ratios.len(), timed) {
            let mut t = [0.0; 2];
            let first = ratios.len() % 2;
            for k in [first, 1 - first] {
                t[k] = self.timer.time(&mut |enc| record(enc, k))?;
            }
            ratios.push(t[1] / t[0]);
            timed += t[0] + t[1];
        }
        let median = sorted_median(&mut ratios);
        Ok(Paired {
            median,
            min: ratios[0],
            max: ratios[ratios.len() - 1],
        })
    }
}

/// Sorts `values` and returns their median (1 when there are none).
fn sorted_median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(1.0)
}

/// Records, for `k` = 0 or 1, one step of the `k`-th (optimizer, set) pair: two
/// operations for [`Bench::paired`].
fn either_step<'a>(
    mut pairs: [(&'a mut dyn Optimizer, &'a mut ParamSet); 2], options: StepOptions,
) -> impl FnMut(&mut wgpu::CommandEncoder, usize) -> Result<()> + 'a {
    move |encoder, k| {
        let (opt, set) = &mut pairs[k.min(1)];
        opt.encode_step(encoder, set, &options).map(|_| ())
    }
}

/// A transformer recipe's groups over `set`'s tensors, in turn: decayed weights, biases
/// without weight decay at a higher learning rate, and embeddings out of the global norm.
fn three_groups(set: &ParamSet) -> Vec<ParamGroup<AdamWConfig>> {
    let names: Vec<String> = set.tensors().iter().map(|t| t.name.clone()).collect();
    let member = |g: usize| names.iter().skip(g).step_by(3).cloned().collect::<Vec<_>>();
    let config = |lr: f64, weight_decay: f64| AdamWConfig {
        lr,
        weight_decay,
        ..Default::default()
    };
    vec![
        ParamGroup::new(member(0), config(1e-3, 0.1)),
        ParamGroup::new(member(1), config(3e-3, 0.0)),
        ParamGroup::new(member(2), config(1e-3, 0.1)).excluded_from_norm(),
    ]
}

const CLIP: Clip = Clip::GlobalNorm {
    max_norm: 1.0,
    norm: Norm::L2,
};

/// Steps recorded before they are submitted, in the host encode measurement.
const ENCODE_IN_FLIGHT: usize = 4;

/// Rounds of [`ENCODE_IN_FLIGHT`] recordings timed in the host encode measurement.
const ENCODE_ROUNDS: usize = 50;

/// Runs every measurement of `config` on `ctx`, calling `progress` before each.
pub fn run(
    ctx: &Context, config: &BenchConfig, progress: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    let timer = Timer::new(ctx)?;
    let info = ctx
        .adapter_info()
        .ok_or(Error::NeedsGpu("clipstep bench"))?
        .clone();
    let mut bench = Bench {
        timer,
        config,
        out: Vec::new(),
        roofline: None,
        progress,
        skipped_rows: Vec::new(),
        warm_up: Vec::new(),
    };
    let mut ratios = Vec::new();
    let fused = StepOptions {
        clip: CLIP,
        ..Default::default()
    };
    let mut skipped = Vec::new();
    for &n in &config.sizes {
        match bench.size(ctx, n, fused) {
            Ok(r) => ratios.push(r),
            // Out of device memory (or any device fault): larger sizes will not fit either.
            Err(Error::Device(msg) | Error::OutOfMemory(msg)) => {
                skipped.push(format!("{n} elements and larger: {msg}"));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let compute = bench.compute_rows(ctx)?;
    let mut encode = Vec::new();
    let k = config.pooled_tensors;
    let sets: [(usize, &str); 3] = [
        (1, "own slabs"),
        (config.many_tensors, "own slabs"),
        (k, "3 pooled buffers"),
    ];
    for (tensors, storage) in sets {
        (bench.progress)(&format!("host encode cost, {tensors} tensors in {storage}"));
        let elements = (tensors as u64 * 64).max(1 << 16);
        let mut set = if storage == "own slabs" {
            set_of(ctx, elements, tensors)?
        } else {
            pooled_set_of(ctx, elements, tensors, 3, true)?
        };
        let mut opt = AdamW::new(&set, AdamWConfig::default())?;
        let (mut us, mut finish_us) = (Vec::new(), Vec::new());
        // Recorded back to back, four at a time, then submitted and run, as steps in flight
        // in a training loop (the recordings and their encoders' finish timed): the upload
        // buffers of the steps that ran come back for the next four.
        for _ in 0..ENCODE_ROUNDS {
            let mut recorded = Vec::with_capacity(ENCODE_IN_FLIGHT);
            for _ in 0..ENCODE_IN_FLIGHT {
                let mut encoder = bench.timer.encoder();
                let start = Instant::now();
                opt.encode_step(&mut encoder, &mut set, &fused)?;
                us.push(start.elapsed().as_secs_f64() * 1e6);
                let start = Instant::now();
                recorded.push(encoder.finish());
                finish_us.push(start.elapsed().as_secs_f64() * 1e6);
            }
            bench.timer.queue.submit(recorded);
            bench.timer.wait()?;
        }
        us.sort_by(f64::total_cmp);
        encode.push(EncodeCost {
            tensors,
            storage: storage.to_string(),
            median_us: us[us.len() / 2],
            min_us: us[0],
            finish_median_us: sorted_median(&mut finish_us),
        });
    }
    Ok(BenchReport {
        adapter: info.name.clone(),
        backend: format!("{:?}", info.backend),
        timing: bench.timer.kind().to_string(),
        measurements: bench.out,
        ratios,
        encode,
        compute,
        skipped: skipped.into_iter().chain(bench.skipped_rows).collect(),
        warm_up: bench.warm_up,
    })
}

/// Whether `--only`'s `only` selects operation `op`: one of its `|`-separated alternatives
/// is a part of the name, or, after a leading `=`, the whole name.
fn selects(only: &str, op: &str) -> bool {
    only.split('|').any(|alt| match alt.strip_prefix('=') {
        Some(name) => op == name,
        None => op.contains(alt),
    })
}

#[cfg(test)]
mod only_tests {
    use super::selects;

    /// Alternatives select by a part of the name, or by the whole name after `=`.
    #[test]
    fn only_selects_parts_and_whole_names() {
        let only = "=AdamW + clip (fused)|AdamW8bit";
        assert!(selects(only, "AdamW + clip (fused)"));
        assert!(selects(only, "AdamW8bit + clip (fused)"));
        assert!(!selects(only, "AdamW + clip (fused), 2000 tensors"));
        assert!(!selects(only, "Adam + clip (fused)"));
        assert!(selects("norm", "global_norm"));
    }
}
