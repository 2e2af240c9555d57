//! What a device's arithmetic does where WGSL leaves it open, measured once when a Context
//! is made (one tiny dispatch and a 16-byte readback).
//!
//! WGSL's `fma(a, b, c)` may be a fused multiply-add (one rounding: NVIDIA's Vulkan driver)
//! or a multiply then an add (two: lavapipe lowers it so). The update kernels correct their
//! divisions and square roots with an fma remainder (`div_rn` in `shaders/rounding.wgsl`),
//! which is exact only when fused, and keep products whole (`exact` in
//! `shaders/update.wgsl`), which only a fusing driver needs: the probe decides whether they
//! do (`override FUSED_FMA`).

/// `io[3] ← fma(io[0], io[1], io[2])`, the inputs read from memory so no compiler folds it.
const PROBE_WGSL: &str = "
@group(0) @binding(0) var<storage, read_write> io: array<f32, 4>;

@compute @workgroup_size(1)
fn main() {
    io[3] = fma(io[0], io[1], io[2]);
}
";

/// Whether `fma` on `device` rounds once: a = b = 1 + 2⁻¹², c = −(1 + 2⁻¹¹). The exact
/// product is 1 + 2⁻¹¹ + 2⁻²⁴, a tie that rounds to 1 + 2⁻¹¹ (even), so a multiply then
/// an add gives 0 and a fused multiply-add gives 2⁻²⁴. Any failure (or another value)
/// counts as not fused: the kernels then keep their plain divisions.
pub(crate) fn fma_is_fused(device: &wgpu::Device, queue: &wgpu::Queue) -> bool {
    use wgpu::util::DeviceExt;
    let a = 1.0 + f32::powi(2.0, -12);
    let c = -(1.0 + f32::powi(2.0, -11));
    let io = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("fma probe"),
        contents: bytemuck::cast_slice(&[a, a, c, f32::NAN]),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("fma probe readback"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("fma probe"),
        source: wgpu::ShaderSource::Wgsl(PROBE_WGSL.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("fma probe"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("fma probe"),
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
    encoder.copy_buffer_to_buffer(&io, 0, &readback, 0, 16);
    queue.submit([encoder.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    if device.poll(wgpu::PollType::wait_indefinitely()).is_err() {
        return false;
    }
    let Ok(bytes) = readback.slice(..).get_mapped_range() else {
        return false;
    };
    // Little-endian bytes, not a cast: a mapped range has no alignment guarantee.
    let out = f32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    out == f32::powi(2.0, -24)
}
