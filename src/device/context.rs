//! Adapter and device selection, device limits, device faults, and the pipeline cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once, RwLock};

use crate::consts::WORKGROUP_SIZE;
use crate::error::{Error, Result};
use crate::kernels::shaders::{bind_group_layout_entries, KernelKey, PipelineKey};

/// Set to `1` to turn "no GPU adapter" into [`Error::NoAdapter`] instead of the CPU fallback.
pub const REQUIRE_GPU_ENV: &str = "CLIPSTEP_REQUIRE_GPU";

/// Set to `0` to fold the norm partials in workgroup memory on every device, as
/// [`ContextOptions::no_subgroups`] does for one Context.
pub const SUBGROUPS_ENV: &str = "CLIPSTEP_SUBGROUPS";

/// Where a [`Context`] runs its kernels.
///
/// Create one per device: it compiles every compute pipeline once and is cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub(crate) gpu: Option<Arc<Gpu>>,
}

/// How to pick an adapter. `Default` honours `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and
/// `CLIPSTEP_REQUIRE_GPU`.
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Backends to consider (`None`: `WGPU_BACKEND`, else all).
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name (`None`: `WGPU_ADAPTER_NAME`, else the best).
    pub adapter_name: Option<String>,
    /// Fail with [`Error::NoAdapter`] rather than fall back to the CPU reference
    /// (`false`: `CLIPSTEP_REQUIRE_GPU=1` still forces it).
    pub require_gpu: bool,
    /// Caps workgroups per grid dimension below the device's limit, so small data reaches
    /// the 2D-grid path that large tensors take (`None`: the device's limit).
    pub max_workgroups_per_dimension: Option<u32>,
    /// Fold the norm partials in workgroup memory even where the device has subgroups of
    /// one fixed size (`false`: use them there; [`Context::subgroup_size`]). Both folds are
    /// deterministic; they add in different orders, so their last bits may differ.
    pub no_subgroups: bool,
}

/// What `clipstep devices` prints for one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// wgpu's adapter info (name, backend, device type, driver).
    pub info: wgpu::AdapterInfo,
    /// The adapter's limits.
    pub limits: wgpu::Limits,
    /// Whether timestamp queries are available (used by `clipstep bench`).
    pub timestamp_queries: bool,
}

/// The GPU half of a [`Context`].
pub(crate) struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) pipelines: Pipelines,
    /// Workgroups per grid dimension: the device limit, or a smaller cap from the options.
    pub(crate) grid_limit: u32,
    /// Whether WGSL's `fma` rounds once on this device (`src/device/probe.rs`).
    fused_fma: bool,
    /// Device loss, surfaced as [`Error::Device`] by every call from then on.
    pub(crate) lost: Arc<Mutex<Option<String>>>,
    /// Upload buffers of in-stream writes, mapped and idle, for the next recording.
    pub(crate) uploads: crate::device::uploads::UploadPool,
}

impl Context {
    /// The best adapter (discrete > integrated > virtual > CPU), honouring `WGPU_BACKEND`
    /// and `WGPU_ADAPTER_NAME`. With no adapter, the CPU reference (said once on stderr),
    /// or [`Error::NoAdapter`] when `CLIPSTEP_REQUIRE_GPU=1`.
    pub fn new() -> Result<Context> {
        Self::with_options(&ContextOptions::default())
    }

    /// As [`Context::new`] with explicit choices.
    pub fn with_options(options: &ContextOptions) -> Result<Context> {
        pollster::block_on(Self::with_options_async(options))
    }

    /// The async form of [`Context::with_options`].
    pub async fn with_options_async(options: &ContextOptions) -> Result<Context> {
        let require_gpu = options.require_gpu
            || std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| v == "1" || v == "true");
        let name = options
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok());
        let adapters = shared_adapters(options.backends);
        let chosen = match &name {
            Some(name) => {
                let lower = name.to_lowercase();
                let found = adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&lower));
                match found {
                    Some(a) => a,
                    None => {
                        return Err(Error::NoAdapter(format!(
                            "no adapter name contains {name:?}; `clipstep devices` lists them"
                        )))
                    }
                }
            }
            None => match adapters.into_iter().next() {
                Some(a) => a,
                None if require_gpu => {
                    return Err(Error::NoAdapter(format!(
                        "wgpu found none ({REQUIRE_GPU_ENV}=1 forbids the CPU fallback); \
                         on a headless Linux machine install a software driver: \
                         apt-get install mesa-vulkan-drivers libvulkan1"
                    )))
                }
                None => return Ok(Context::cpu_fallback()),
            },
        };
        let subgroups = !options.no_subgroups
            && std::env::var(SUBGROUPS_ENV).map_or(true, |v| v != "0" && v != "false");
        let mut ctx = Self::open(chosen, subgroups).await?;
        if let (Some(cap), Some(gpu)) = (options.max_workgroups_per_dimension, ctx.gpu.as_mut()) {
            let gpu = Arc::get_mut(gpu).expect("a new context is not shared");
            gpu.grid_limit = gpu.grid_limit.min(cap.max(1));
        }
        Ok(ctx)
    }

    /// The CPU reference backend, used when no adapter exists.
    pub fn cpu() -> Context {
        Context { gpu: None }
    }

    fn cpu_fallback() -> Context {
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            eprintln!(
                "clipstep: no GPU adapter found; running on the CPU reference \
                 (set {REQUIRE_GPU_ENV}=1 to make this an error)"
            )
        });
        Context::cpu()
    }

    async fn open(adapter: wgpu::Adapter, subgroups: bool) -> Result<Context> {
        let info = adapter.get_info();
        let wanted = if subgroups {
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::TIMESTAMP_QUERY
        };
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("clipstep"),
                required_features: features,
                // The adapter's real limits: slabs may then be as large as the hardware allows.
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: info.name.clone(),
                reason: match info.backend {
                    // An H200's GL adapter said only "Parent device is lost" here.
                    wgpu::Backend::Gl => format!(
                        "{e} (the GL backend: wgpu could not open a GL context through \
                         EGL on this adapter, as with some headless drivers; use Vulkan, \
                         WGPU_BACKEND=vulkan, where `clipstep devices` lists it)"
                    ),
                    _ => e.to_string(),
                },
            })?;
        // Every clipstep call captures its own errors in error scopes; what reaches this
        // handler came from someone else's call on this device (`device_queue`), and
        // belongs to no clipstep result. wgpu's default handler would panic: say it instead
        // (the first few; a loop of invalid calls would otherwise flood stderr).
        let said = std::sync::atomic::AtomicU32::new(0);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            match said.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                n if n < UNCAPTURED_SAID => {
                    eprintln!("clipstep: wgpu error outside any clipstep call on this device: {e}")
                }
                UNCAPTURED_SAID => eprintln!(
                    "clipstep: more wgpu errors outside clipstep calls on this device; \
                     not printed"
                ),
                _ => {}
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let on_lost = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let why = format!("device lost ({reason:?}): {msg}");
            on_lost.lock().unwrap().get_or_insert(why);
        });
        Self::from_parts(device, queue, info, lost)
    }

    /// Embeds clipstep in a caller's wgpu setup. The device's own limits bound the slab
    /// size. The caller keeps its uncaptured-error handler; clipstep installs none (its
    /// calls capture their own errors). A device whose limits cannot run the kernels
    /// (fewer than 256 invocations per workgroup, too little workgroup
    /// memory, too few storage buffers per stage) is [`Error::DeviceLimits`].
    ///
    /// External buffers and encoders passed to this Context must come from this device.
    /// Where the device was created with [`wgpu::Features::SUBGROUP`] and its subgroups
    /// have one fixed size, the norm partials fold with subgroup operations.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Context> {
        let info = device.adapter_info();
        Self::from_parts(device, queue, info, Arc::new(Mutex::new(None)))
    }

    fn from_parts(
        device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo,
        lost: Arc<Mutex<Option<String>>>,
    ) -> Result<Context> {
        let limits = device.limits();
        check_limits(&limits)?;
        let scope = ErrorScope::push(&device);
        let fused_fma = crate::device::probe::fma_is_fused(&device, &queue);
        // A driver that rejects the subgroup probe only loses the subgroup fold.
        let probe_scope = ErrorScope::push(&device);
        let probed = crate::device::probe::fixed_subgroup_size(&device, &queue, &info);
        let clean = probe_scope.pop().is_ok();
        let subgroup_size = probed.filter(|_| clean);
        let pipelines = Pipelines::new(&device, fused_fma, subgroup_size);
        scope.pop()?;
        Ok(Context {
            gpu: Some(Arc::new(Gpu {
                grid_limit: limits.max_compute_workgroups_per_dimension.max(1),
                device,
                queue,
                info,
                limits,
                pipelines,
                lost,
                fused_fma,
                uploads: Default::default(),
            })),
        })
    }

    /// Whether kernels run on a GPU adapter (false: the CPU reference).
    pub fn is_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// The adapter's info, `None` on the CPU reference.
    pub fn adapter_info(&self) -> Option<&wgpu::AdapterInfo> {
        self.gpu.as_ref().map(|g| &g.info)
    }

    /// Whether the device's `fma` is a fused multiply-add (one rounding), probed when the
    /// Context was made; `None` on the CPU reference. Where it is, the update kernels keep
    /// each product whole and round their divisions and square roots as the reference does
    /// (`shaders/update.wgsl`, `shaders/rounding.wgsl`); where it is not, the plain WGSL
    /// operations are kept (rounded as the reference on lavapipe).
    pub fn fused_fma(&self) -> Option<bool> {
        self.gpu.as_ref().map(|g| g.fused_fma)
    }

    /// The size of the device's subgroups where the norm partials fold with subgroup
    /// operations: the device was given [`wgpu::Features::SUBGROUP`] (clipstep asks for
    /// it unless [`ContextOptions::no_subgroups`]), its subgroups have one fixed size ≥ 8
    /// and cover consecutive invocations (probed when the Context was made). `None`
    /// elsewhere (GL, the CPU reference) and on devices whose subgroup size varies: there
    /// the fold runs in workgroup memory.
    pub fn subgroup_size(&self) -> Option<u32> {
        self.gpu.as_ref().and_then(|g| g.pipelines.subgroup_size)
    }

    /// The device's limits, `None` on the CPU reference.
    pub fn limits(&self) -> Option<&wgpu::Limits> {
        self.gpu.as_ref().map(|g| &g.limits)
    }

    /// Whether `self` and `other` are clones of one Context (one device and queue, one set
    /// of pipeline caches); two CPU Contexts are the same. Comparing their `wgpu::Device`s
    /// is not enough: devices of two wgpu instances can carry equal ids.
    pub fn is_same(&self, other: &Context) -> bool {
        match (&self.gpu, &other.gpu) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The wgpu device and queue, to run the caller's own kernels on clipstep's buffers.
    pub fn device_queue(&self) -> Option<(&wgpu::Device, &wgpu::Queue)> {
        self.gpu.as_ref().map(|g| (&g.device, &g.queue))
    }

    /// "name (backend, type)" or "CPU reference".
    pub fn describe(&self) -> String {
        match &self.gpu {
            Some(g) => format!(
                "{} ({:?}, {:?})",
                g.info.name, g.info.backend, g.info.device_type
            ),
            None => "CPU reference (no GPU adapter)".to_string(),
        }
    }

    pub(crate) fn gpu(&self) -> Option<&Arc<Gpu>> {
        self.gpu.as_ref()
    }
}

/// Every adapter wgpu sees on `backends` (`None`: `WGPU_BACKEND`, else all), best first.
pub fn adapters(backends: Option<wgpu::Backends>) -> Vec<AdapterSummary> {
    shared_adapters(backends)
        .iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            limits: a.limits(),
            timestamp_queries: a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        })
        .collect()
}

/// Uncaptured wgpu errors printed per device before the rest are only counted.
const UNCAPTURED_SAID: u32 = 8;

/// The share of the driver's memory budget (percent) past which allocations fail cleanly.
const MEMORY_BUDGET_PERCENT: u8 = 90;

/// The adapters of the process's one wgpu instance for `backends` (`None`:
/// `WGPU_BACKEND`, else all), best first, enumerated once.
///
/// Contexts share the instance, so a buffer or encoder of one Context passed to another is
/// a resource of another device that wgpu rejects by name, instead of an id that resolves
/// into another instance's tables. They share the adapters too: on GL every adapter of an
/// instance wraps the one EGL context, and only devices of the same adapter object take
/// the same lock before making it current (two adapter objects would make it current on
/// two threads at once: `EGL_BAD_ACCESS`).
fn shared_adapters(backends: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    type Shared = (wgpu::Backends, Vec<wgpu::Adapter>);
    static SHARED: Mutex<Vec<Shared>> = Mutex::new(Vec::new());
    let backends = backends
        .or_else(wgpu::Backends::from_env)
        .unwrap_or(wgpu::Backends::all());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, adapters)) = shared.iter().find(|(b, _)| *b == backends) {
        return adapters.clone();
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    // Past this share of the memory budget the driver reports (Vulkan with
    // VK_EXT_memory_budget, D3D12), an allocation is a recoverable out-of-memory error
    // (`Error::OutOfMemory`) instead of memory pressure that loses the device.
    desc.memory_budget_thresholds.for_resource_creation = Some(MEMORY_BUDGET_PERCENT);
    // Debug builds default to SPIR-V debug info, whose OpSource names WGSL (source language
    // 10): the Khronos validation layer of Debian 12 (1.3.239) rejects that operand on every
    // pipeline. Shader debug info stays available with WGPU_DEBUG=1.
    if std::env::var_os("WGPU_DEBUG").is_none() {
        desc.flags.remove(wgpu::InstanceFlags::DEBUG);
    }
    let instance = wgpu::Instance::new(desc);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| std::cmp::Reverse(rank(&a.get_info())));
    shared.push((backends, adapters.clone()));
    adapters
}

/// Discrete > integrated > virtual > CPU > other; native APIs before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    };
    let api = u8::from(info.backend != wgpu::Backend::Gl);
    (kind, api)
}

/// The compiled pipelines, built once per device and cached by [`PipelineKey`]: per
/// kernel ([`KernelKey`]: body, access, addressing, state storage) one module and one
/// explicit bind group layout reflected from its source (so one bind group serves every
/// variant of it), and per variant (norm kind and NaNs as 0 for the norm passes, the step's
/// shape for the updates) one pipeline. The f32 kernels are compiled with the Context
/// ([`KernelKey::eager`]: every norm variant, the plain shape of each update); the others
/// on their first use, so a Context does not pay for what it never runs (all of it would
/// more than double its creation time on lavapipe).
///
/// Pipelines are made without wgpu's zero-initialization of workgroup memory, but for the
/// one kernel that reads it zeroed ([`KernelKey::reads_zeroed_workgroup_memory`]): every
/// other kernel writes each workgroup word before any invocation reads it (the test
/// `workgroup_memory_is_audited` in `optim::rules` lists what was checked). Where the
/// driver cannot zero it natively (GL; Vulkan, DX12 and Metal drivers without it) naga
/// adds code that does, in every workgroup before the kernel runs, and Mesa's GL driver
/// compiled a kernel with that code for seconds at its first dispatch (the GL test suite
/// on a cold shader cache: 12 min with it, 2.6 min without).
pub(crate) struct Pipelines {
    device: wgpu::Device,
    fused_fma: bool,
    /// The fixed subgroup size the norm partials fold with (`None`: workgroup memory).
    subgroup_size: Option<u32>,
    /// Per kernel: its module, bind group layout and pipeline layout.
    modules: RwLock<HashMap<KernelKey, Arc<Module>>>,
    /// Per variant: its pipeline.
    pipelines: RwLock<HashMap<PipelineKey, wgpu::ComputePipeline>>,
}

/// One kernel's compiled module and the layouts every variant of it shares.
struct Module {
    module: wgpu::ShaderModule,
    bind_group_layout: wgpu::BindGroupLayout,
    layout: wgpu::PipelineLayout,
}

impl Pipelines {
    fn new(device: &wgpu::Device, fused_fma: bool, subgroup_size: Option<u32>) -> Self {
        let pipelines = Pipelines {
            device: device.clone(),
            fused_fma,
            subgroup_size,
            modules: RwLock::default(),
            pipelines: RwLock::default(),
        };
        for kernel in eager_kernels() {
            // An update kernel's plain shape only; the others on first use.
            let eager = match kernel.shape_specialized() {
                true => vec![kernel.shaped(0)],
                false => PipelineKey::variants(kernel),
            };
            for key in eager {
                pipelines.get(key);
            }
        }
        pipelines
    }

    /// `kernel`'s module and layouts, built now if they were not yet.
    fn module(&self, kernel: KernelKey) -> Arc<Module> {
        if let Some(m) = read(&self.modules).get(&kernel) {
            return m.clone();
        }
        let device = &self.device;
        let name = kernel.name();
        let module = crate::kernels::shaders::shader_module(
            device,
            &name,
            &kernel.source_for(self.subgroup_size),
        );
        // Every kernel binds exactly what its source declares (a layout derived by wgpu
        // would drop declared bindings a variant leaves unused), and a kernel's variants
        // share the one layout, so one bind group serves them all.
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(&name),
            entries: bind_group_layout_entries(kernel),
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&name),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        let built = Arc::new(Module {
            module,
            bind_group_layout,
            layout,
        });
        let mut modules = self.modules.write().unwrap_or_else(|e| e.into_inner());
        modules.entry(kernel).or_insert(built).clone()
    }

    /// The bind group layout every variant of `kernel` shares.
    pub(crate) fn bind_group_layout(&self, kernel: KernelKey) -> wgpu::BindGroupLayout {
        self.module(kernel).bind_group_layout.clone()
    }

    /// The pipeline of `key`, compiled now if it was not yet.
    pub(crate) fn get(&self, key: PipelineKey) -> wgpu::ComputePipeline {
        if let Some(p) = read(&self.pipelines).get(&key) {
            return p.clone();
        }
        let module = self.module(key.kernel);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&key.kernel.name()),
                layout: Some(&module.layout),
                module: &module.module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &key.constants(self.fused_fma),
                    zero_initialize_workgroup_memory: key.kernel.reads_zeroed_workgroup_memory(),
                },
                cache: None,
            });
        let mut pipelines = self.pipelines.write().unwrap_or_else(|e| e.into_inner());
        pipelines.entry(key).or_insert(pipeline).clone()
    }
}

/// A read guard on `lock`, whatever a panicking writer left (the maps only grow).
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// The kernels a Context compiles when it is made ([`KernelKey::eager`]): every kernel but
/// the rules' (an optimizer builds its own when it is made: `UpdateKernel::new`).
fn eager_kernels() -> impl Iterator<Item = KernelKey> {
    KernelKey::all(&[]).into_iter().filter(|k| k.eager())
}

/// [`Error::DeviceLimits`] unless `limits` can run every eager kernel: a workgroup of
/// 256 invocations, the reduction's workgroup memory, and the storage and uniform buffers
/// the widest of them binds. A kernel built later (a trust rule over a pool or a 16-bit
/// set binds more) is checked when an optimizer asks for it ([`Gpu::check_binds`]).
fn check_limits(limits: &wgpu::Limits) -> Result<()> {
    let widest = |ty: fn(&wgpu::BindingType) -> bool| {
        eager_kernels()
            .map(|k| {
                bind_group_layout_entries(k)
                    .iter()
                    .filter(|e| ty(&e.ty))
                    .count()
            })
            .max()
            .unwrap_or(0) as u64
    };
    let storage = widest(|t| {
        matches!(
            t,
            wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { .. },
                ..
            }
        )
    });
    let uniform = widest(|t| {
        matches!(
            t,
            wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                ..
            }
        )
    });
    let needs: [(&'static str, u64, u64); 5] = [
        (
            "max_compute_invocations_per_workgroup",
            u64::from(WORKGROUP_SIZE),
            u64::from(limits.max_compute_invocations_per_workgroup),
        ),
        (
            "max_compute_workgroup_size_x",
            u64::from(WORKGROUP_SIZE),
            u64::from(limits.max_compute_workgroup_size_x),
        ),
        (
            "max_compute_workgroup_storage_size",
            u64::from(WORKGROUP_SIZE) * 8,
            u64::from(limits.max_compute_workgroup_storage_size),
        ),
        (
            "max_storage_buffers_per_shader_stage",
            storage,
            u64::from(limits.max_storage_buffers_per_shader_stage),
        ),
        (
            "max_uniform_buffers_per_shader_stage",
            uniform,
            u64::from(limits.max_uniform_buffers_per_shader_stage),
        ),
    ];
    match needs.iter().find(|(_, need, have)| have < need) {
        Some(&(limit, need, have)) => Err(Error::DeviceLimits { limit, need, have }),
        None => Ok(()),
    }
}

/// The validation, out-of-memory and internal error scopes of one clipstep call on this
/// thread (wgpu's error scopes are per thread, so another thread's errors never land here).
pub(crate) struct ErrorScope {
    /// Innermost last: popped in reverse.
    guards: Vec<wgpu::ErrorScopeGuard>,
}

impl ErrorScope {
    pub(crate) fn push(device: &wgpu::Device) -> ErrorScope {
        let guards = [
            wgpu::ErrorFilter::Internal,
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Validation,
        ]
        .map(|f| device.push_error_scope(f))
        .into();
        ErrorScope { guards }
    }

    /// The error the call caused (an allocation failure before anything it caused, else
    /// the first), as a clipstep error: a validation error is
    /// [`Error::Rejected`], an allocation failure [`Error::OutOfMemory`] (the Context stays
    /// usable after either), an internal error [`Error::Device`].
    pub(crate) fn pop(mut self) -> Result<()> {
        let mut first = None;
        let mut oom = None;
        while let Some(guard) = self.guards.pop() {
            match pollster::block_on(guard.pop()) {
                Some(e @ wgpu::Error::OutOfMemory { .. }) => oom = Some(e),
                error => first = first.or(error),
            }
        }
        // An allocation that failed makes later uses of its buffer invalid: the validation
        // errors those raise (a write to it, seen on an H100) are its consequence, and the
        // out-of-memory error is the one that says what to fix.
        match oom.or(first) {
            None => Ok(()),
            Some(wgpu::Error::Validation { description, .. }) => {
                Err(Error::Rejected(description.trim().to_string()))
            }
            Some(wgpu::Error::OutOfMemory { source }) => {
                Err(Error::OutOfMemory(source.to_string()))
            }
            Some(wgpu::Error::Internal { description, .. }) => Err(Error::Device(description)),
        }
    }
}
