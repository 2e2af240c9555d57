//! What a device does where WGSL leaves it open, measured once when a Context is made (a
//! tiny dispatch and a small readback each).
//!
//! WGSL's `fma(a, b, c)` may be a fused multiply-add (one rounding: NVIDIA's Vulkan driver)
//! or a multiply then an add (two: lavapipe lowers it so). The update kernels correct their
//! divisions and square roots with an fma remainder (`div_rn` in `shaders/rounding.wgsl`),
//! which is exact only when fused, and keep products whole (`exact` in
//! `shaders/update.wgsl`), which only a fusing driver needs: the probe decides whether they
//! do (`override FUSED_FMA`).
//!
//! Subgroups: the norm partials fold each subgroup with subgroup operations
//! (`shaders/reduce_first_subgroup.wgsl`) only where every subgroup of a workgroup has the
//! one size the adapter reports and covers consecutive invocations, which Vulkan does not
//! promise: the probe looks.

use crate::consts::WORKGROUP_SIZE;

/// `io[3] ← fma(io[0], io[1], io[2])`, the inputs read from memory so no compiler folds it.
const FMA_WGSL: &str = "
@group(0) @binding(0) var<storage, read_write> io: array<u32, 4>;

@compute @workgroup_size(1)
fn main() {
    io[3] = bitcast<u32>(fma(bitcast<f32>(io[0]), bitcast<f32>(io[1]), bitcast<f32>(io[2])));
}
";

/// `io[i] ← subgroup_size << 16 | subgroup_invocation_id` for every invocation i of one
/// workgroup of WORKGROUP_SIZE.
const SUBGROUP_WGSL: &str = "
@group(0) @binding(0) var<storage, read_write> io: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) size: u32,
    @builtin(subgroup_invocation_id) id: u32,
) {
    io[lid] = (size << 16u) | id;
}
";

/// Whether `fma` on `device` rounds once: a = b = 1 + 2⁻¹², c = −(1 + 2⁻¹¹). The exact
/// product is 1 + 2⁻¹¹ + 2⁻²⁴, a tie that rounds to 1 + 2⁻¹¹ (even), so a multiply then
/// an add gives 0 and a fused multiply-add gives 2⁻²⁴. Any failure (or another value)
/// counts as not fused: the kernels then keep their plain divisions.
pub(crate) fn fma_is_fused(device: &wgpu::Device, queue: &wgpu::Queue) -> bool {
    let a = (1.0 + f32::powi(2.0, -12)).to_bits();
    let c = (-(1.0 + f32::powi(2.0, -11))).to_bits();
    run(
        device,
        queue,
        "fma probe",
        FMA_WGSL,
        &[a, a, c, f32::NAN.to_bits()],
    )
    .is_some_and(|out| out[3] == f32::powi(2.0, -24).to_bits())
}

/// The subgroup size the norm partials may fold with: `Some(s)` where `device` has
/// [`wgpu::Features::SUBGROUP`], the adapter reports one size `s` (minimum = maximum, a
/// power of two from 8 to the workgroup size) and a probe finds every invocation i of a
/// workgroup in a subgroup of `s` at position i mod s. `None` otherwise, or on any failure.
pub(crate) fn fixed_subgroup_size(
    device: &wgpu::Device, queue: &wgpu::Queue, info: &wgpu::AdapterInfo,
) -> Option<u32> {
    let size = info.subgroup_min_size;
    let usable = device.features().contains(wgpu::Features::SUBGROUP)
        && size == info.subgroup_max_size
        && size.is_power_of_two()
        && (8..=WORKGROUP_SIZE).contains(&size);
    if !usable {
        return None;
    }
    let source = SUBGROUP_WGSL.replace("WORKGROUP_SIZE", &WORKGROUP_SIZE.to_string());
    let init = vec![u32::MAX; WORKGROUP_SIZE as usize];
    let out = run(device, queue, "subgroup probe", &source, &init)?;
    let laid_out = (0..WORKGROUP_SIZE).all(|i| out[i as usize] == ((size << 16) | (i % size)));
    laid_out.then_some(size)
}

/// Runs one workgroup of `source`'s `main` over `io` (binding 0, initialized to `init`)
/// and returns `io` afterwards; `None` if anything failed.
fn run(
    device: &wgpu::Device, queue: &wgpu::Queue, label: &str, source: &str, init: &[u32],
) -> Option<Vec<u32>> {
    use wgpu::util::DeviceExt;
    let bytes = (init.len() * 4) as u64;
    let io = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(init),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let module = crate::kernels::shaders::shader_module(device, label, source);
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: io.as_entire_binding(),
        }],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&io, 0, &readback, 0, bytes);
    queue.submit([encoder.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely()).ok()?;
    let mapped = readback.slice(..).get_mapped_range().ok()?;
    // Little-endian words, not a cast: a mapped range has no alignment guarantee.
    Some(
        mapped
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect(),
    )
}
