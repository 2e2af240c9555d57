//! wgpu plumbing the training examples share: buffers, pipelines, bind groups, and the
//! step loop that records a model's passes and the optimizer step into one command encoder
//! per step and reads the loss back every few steps.

use std::error::Error;

use wgpu::util::DeviceExt;

/// A storage buffer holding `contents`.
pub fn storage(device: &wgpu::Device, label: &str, contents: &[f32]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(contents),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// A uniform buffer holding `contents`.
pub fn uniform(device: &wgpu::Device, label: &str, contents: &[u32]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(contents),
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

/// One compute pipeline per entry point of WGSL `source` (layouts derived from it).
pub fn pipelines(
    device: &wgpu::Device, source: &str, entries: &[&str],
) -> Vec<wgpu::ComputePipeline> {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    entries
        .iter()
        .map(|&entry| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })
        .collect()
}

/// `pipeline`'s bind group of whole `buffers`, by binding number.
pub fn bind_group(
    device: &wgpu::Device, pipeline: &wgpu::ComputePipeline, buffers: &[(u32, &wgpu::Buffer)],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .map(|&(binding, buffer)| wgpu::BindGroupEntry {
            binding,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// One dispatch of a model's step: a pipeline, its bind group, its workgroups.
pub type Dispatch<'a> = (&'a wgpu::ComputePipeline, &'a wgpu::BindGroup, u32);

/// `steps` training steps, one command encoder each: the model's `dispatches` in one
/// compute pass, then `optimize` (which records the optimizer's step into the encoder and
/// returns its report), submitted. Every `log_every` steps, and at the last, the f32 at the
/// start of `loss` is read back and handed to `log` with the step and its report: the only
/// host syncs of the loop.
#[allow(clippy::too_many_arguments)]
pub fn train<R>(
    device: &wgpu::Device, queue: &wgpu::Queue, dispatches: &[Dispatch<'_>], loss: &wgpu::Buffer,
    steps: usize, log_every: usize,
    mut optimize: impl FnMut(&mut wgpu::CommandEncoder) -> Result<R, Box<dyn Error>>,
    mut log: impl FnMut(usize, f32, R) -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("loss readback"),
        size: 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    for step in 0..steps {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for &(pipeline, group, workgroups) in dispatches {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(workgroups, 1, 1);
            }
        }
        let report = optimize(&mut encoder)?;
        let logged = step % log_every == 0 || step + 1 == steps;
        if logged {
            encoder.copy_buffer_to_buffer(loss, 0, &readback, 0, 4);
        }
        queue.submit([encoder.finish()]);
        if logged {
            let (tx, rx) = std::sync::mpsc::channel();
            readback.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            device.poll(wgpu::PollType::wait_indefinitely())?;
            rx.recv()??;
            let value = bytemuck::pod_read_unaligned::<f32>(&readback.get_mapped_range(..)?[..4]);
            readback.unmap();
            log(step, value, report)?;
        }
    }
    Ok(())
}
