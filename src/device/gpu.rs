//! GPU plumbing, and nothing else: buffers, in-stream writes, submission, readback, grids,
//! bind groups and per-slab dispatch. Every kernel launcher is built from these.

use crate::consts::{VEC4_PER_INVOCATION, VEC_WIDTH, WORKGROUP_SIZE};
use crate::device::context::{ErrorScope, Gpu};
use crate::error::{Error, Result};
use crate::kernels::shaders::{KernelKey, PipelineKey};

impl Gpu {
    pub(crate) fn buffer(
        &self, label: &str, bytes: u64, usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            // Zero-sized bindings are invalid; tiny sets still get one vec4.
            size: bytes.max(16).next_multiple_of(16),
            usage,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        use wgpu::BufferUsages as U;
        self.buffer(label, bytes, U::STORAGE | U::COPY_SRC | U::COPY_DST)
    }

    pub(crate) fn uniform(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        use wgpu::BufferUsages as U;
        let buffer = self.buffer(label, contents.len() as u64, U::UNIFORM | U::COPY_DST);
        self.queue.write_buffer(&buffer, 0, contents);
        buffer
    }

    /// Records `dst[offset..offset + bytes.len()] = bytes` for each `(dst, offset, bytes)`
    /// into `encoder`, in stream order, from one upload buffer: each encoded operation sees
    /// its own options even when several are recorded before one submit (a
    /// `queue.write_buffer` would land all writes before any of them ran), and an upload
    /// submitted this way lands whole or not at all. Offsets and lengths are multiples of 4.
    /// Small writes (a step's options) reuse the upload buffers of submissions that ran
    /// ([`crate::device::uploads`]).
    pub(crate) fn write_in_stream(
        &self, encoder: &mut wgpu::CommandEncoder, writes: &[(&wgpu::Buffer, u64, &[u8])],
    ) -> Result<()> {
        // A lost device cannot map: say so instead of recording into it.
        self.check()?;
        let align = |n: usize| (n as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let total: u64 = writes.iter().map(|(_, _, b)| align(b.len())).sum();
        if total == 0 {
            return Ok(());
        }
        // Each upload buffer holds at most `piece` bytes (a write larger than that is split
        // over several): a set's whole image may pass the device's `max_buffer_size`.
        let piece = staging_piece(&self.limits);
        let segments = segments(writes, piece);
        for group in pack(&segments, piece) {
            let size: u64 = group.iter().map(|s| align(s.bytes.len())).sum();
            let src = self.uploads.take(&self.device, size);
            {
                let mut view = src
                    .get_mapped_range_mut(..)
                    .map_err(|e| Error::Device(e.to_string()))?;
                let mut at = 0;
                for s in group {
                    view.slice(at..at + s.bytes.len()).copy_from_slice(s.bytes);
                    at += align(s.bytes.len()) as usize;
                }
            }
            src.unmap();
            let mut at = 0;
            for s in group {
                let dst: &wgpu::Buffer = s.dst;
                encoder.copy_buffer_to_buffer(&src, at, dst, s.offset, align(s.bytes.len()));
                at += align(s.bytes.len());
            }
            self.uploads.recycle_on_submit(encoder, &src);
        }
        Ok(())
    }

    /// Binds `buffer[offset..offset + bytes]` as a storage buffer in the call's error
    /// scope: [`Error::Rejected`] if the buffer was destroyed or belongs to another device.
    pub(crate) fn probe(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.scoped(|| {
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("clipstep probe"),
                    entries: &[wgpu::BindGroupLayoutEntry {
                        binding: 0,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: true },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    }],
                });
            let _probe = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("clipstep probe"),
                layout: &layout,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: part(buffer, offset, bytes),
                }],
            });
            Ok(())
        })
    }

    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("clipstep"),
            })
    }

    /// Writes each `(dst, offset, bytes)` in one submission, all or nothing (see
    /// [`Gpu::write_in_stream`] and [`Gpu::submit_atomic`]).
    pub(crate) fn upload(&self, writes: &[(&wgpu::Buffer, u64, &[u8])]) -> Result<()> {
        self.submit_atomic(|encoder| self.write_in_stream(encoder, writes))
    }

    /// Waits until the queue is idle.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(e.to_string()))?;
        self.check()
    }

    /// Copies each `(buffer, offset, bytes)` range to the host, concatenated, in one
    /// submission: the only host sync in the crate.
    pub(crate) async fn read(&self, ranges: &[(&wgpu::Buffer, u64, u64)]) -> Result<Vec<u8>> {
        let total: u64 = ranges.iter().map(|r| r.2).sum();
        if total == 0 {
            return Ok(Vec::new());
        }
        use wgpu::BufferUsages as U;
        // Readback buffers of at most `piece` bytes each (see `write_in_stream`), all
        // filled by one submission.
        let piece = staging_piece(&self.limits);
        let sizes: Vec<u64> = (0..total.div_ceil(piece))
            .map(|k| piece.min(total - k * piece))
            .collect();
        let staging = self.scoped(|| {
            Ok(sizes
                .iter()
                .map(|&n| self.buffer("clipstep readback", n, U::MAP_READ | U::COPY_DST))
                .collect::<Vec<_>>())
        })?;
        self.submit_atomic(|encoder| {
            let mut at = 0u64;
            for &(src, offset, bytes) in ranges {
                let mut done = 0;
                while done < bytes {
                    let (k, within) = ((at + done) / piece, (at + done) % piece);
                    let n = (bytes - done).min(piece - within);
                    encoder.copy_buffer_to_buffer(
                        src,
                        offset + done,
                        &staging[k as usize],
                        within,
                        n,
                    );
                    done += n;
                }
                at += bytes;
            }
            Ok(())
        })?;
        let mut receivers = Vec::with_capacity(staging.len());
        self.scoped(|| {
            for (buffer, &n) in staging.iter().zip(&sizes) {
                let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
                buffer.map_async(wgpu::MapMode::Read, 0..n, move |r| {
                    let _ = tx.send(r);
                });
                receivers.push(rx);
            }
            Ok(())
        })?;
        self.wait()?;
        let mut data = Vec::with_capacity(total as usize);
        for ((rx, buffer), &n) in receivers.into_iter().zip(&staging).zip(&sizes) {
            rx.receive()
                .await
                .ok_or_else(|| Error::Readback("map callback dropped".into()))?
                .map_err(|e| Error::Readback(e.to_string()))?;
            data.extend_from_slice(
                &buffer
                    .get_mapped_range(0..n)
                    .map_err(|e| Error::Readback(e.to_string()))?,
            );
            buffer.unmap();
        }
        Ok(data)
    }

    pub(crate) fn read_blocking(&self, ranges: &[(&wgpu::Buffer, u64, u64)]) -> Result<Vec<u8>> {
        pollster::block_on(self.read(ranges))
    }

    /// A 2D grid of `groups` workgroups: x up to the per-dimension limit, the rest in y.
    pub(crate) fn grid(&self, groups: u32) -> (u32, u32) {
        let max = self.grid_limit;
        if groups <= max {
            (groups, 1)
        } else {
            (max, groups.div_ceil(max))
        }
    }
}

/// Little-endian bytes to f32s (a mapped range has no alignment guarantee for a cast).
pub(crate) fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Workgroups of an elementwise kernel over `len` elements (see `shaders/elementwise.wgsl`).
pub(crate) fn elementwise_groups(len: u64) -> u32 {
    len.div_ceil(u64::from(VEC_WIDTH))
        .div_ceil(u64::from(WORKGROUP_SIZE * VEC4_PER_INVOCATION)) as u32
}

/// A whole buffer as a binding.
pub(crate) fn whole(b: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    b.as_entire_binding()
}

/// `size` bytes of `buffer` from `offset`, bound as one binding (an optimizer's group
/// table, which lives in its options buffer: [`crate::kernels::norm::NormWorkspace`]).
#[derive(Clone, Debug)]
pub(crate) struct BufferPart {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl BufferPart {
    /// The part as a binding.
    pub(crate) fn resource(&self) -> wgpu::BindingResource<'_> {
        part(&self.buffer, self.offset, self.size)
    }
}

/// `size` bytes of `b` from `offset` as a binding.
pub(crate) fn part(b: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: b,
        offset,
        size: wgpu::BufferSize::new(size),
    })
}

impl Gpu {
    /// [`Error::DeviceLimits`] unless this device can bind every storage buffer `kernel`
    /// declares (a kernel outside the Context's eager set, checked before it is built).
    pub(crate) fn check_binds(&self, kernel: KernelKey) -> Result<()> {
        let need = crate::kernels::shaders::storage_bindings(kernel);
        let have = self.limits.max_storage_buffers_per_shader_stage;
        match need <= have {
            true => Ok(()),
            false => Err(Error::DeviceLimits {
                limit: "max_storage_buffers_per_shader_stage",
                need: u64::from(need),
                have: u64::from(have),
            }),
        }
    }

    /// A bind group for `kernel` with `resources` at bindings 0, 1, 2, ...
    pub(crate) fn bind_group(
        &self, kernel: impl Into<KernelKey>, resources: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        let numbered: Vec<_> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u32, r.clone()))
            .collect();
        self.bind_group_at(kernel, &numbered)
    }

    /// A bind group for `kernel` with each resource at its own binding number.
    pub(crate) fn bind_group_at(
        &self, kernel: impl Into<KernelKey>, resources: &[(u32, wgpu::BindingResource<'_>)],
    ) -> wgpu::BindGroup {
        let kernel = kernel.into();
        let layout = self.pipelines.bind_group_layout(kernel);
        let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
            .iter()
            .map(|(binding, r)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: r.clone(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.name()),
            layout: &layout,
            entries: &entries,
        })
    }

    /// Records `kernel` once with `group` over `groups` workgroups (2D past the grid limit).
    pub(crate) fn dispatch(
        &self, pass: &mut wgpu::ComputePass<'_>, kernel: impl Into<PipelineKey>,
        group: &wgpu::BindGroup, groups: u32,
    ) {
        self.dispatch_per_slab(pass, kernel, std::slice::from_ref(group), [groups]);
    }

    /// Records each `(pipeline, bind group, workgroups)` in order, setting a pipeline only
    /// when it changes; empty grids are skipped.
    pub(crate) fn dispatch_each(
        &self, pass: &mut wgpu::ComputePass<'_>,
        dispatches: impl IntoIterator<Item = (PipelineKey, wgpu::BindGroup, u32)>,
    ) {
        let mut current = None;
        for (key, group, n) in dispatches {
            if n == 0 {
                continue;
            }
            if current != Some(key) {
                pass.set_pipeline(&self.pipelines.get(key));
                current = Some(key);
            }
            let (x, y) = self.grid(n);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
    }

    /// Records `kernel` once per slab with the slab's bind group, over `sizes` workgroups.
    pub(crate) fn dispatch_per_slab(
        &self, pass: &mut wgpu::ComputePass<'_>, kernel: impl Into<PipelineKey>,
        groups: &[wgpu::BindGroup], sizes: impl IntoIterator<Item = u32>,
    ) {
        pass.set_pipeline(&self.pipelines.get(kernel.into()));
        for (group, n) in groups.iter().zip(sizes) {
            if n == 0 {
                continue;
            }
            let (x, y) = self.grid(n);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
    }
}

impl Gpu {
    /// [`Error::Device`] once the device is lost.
    pub(crate) fn check(&self) -> Result<()> {
        match self.lost.lock().unwrap().clone() {
            Some(msg) => Err(Error::Device(msg)),
            None => Ok(()),
        }
    }

    /// Runs `call` with its wgpu errors captured: the call's own error first, else the
    /// first error wgpu reported while it ran (see [`ErrorScope::pop`]).
    pub(crate) fn scoped<R>(&self, call: impl FnOnce() -> Result<R>) -> Result<R> {
        self.check()?;
        let scope = ErrorScope::push(&self.device);
        let out = call();
        let reported = scope.pop();
        if let Err(oom @ Error::OutOfMemory(_)) = reported {
            // What the call did allocate is dropped here, and wgpu frees it at its next
            // maintenance: wait for that, so the memory is back when the caller sees the
            // error (else the next allocation, even a small one, can fail too).
            drop(out);
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
            return Err(oom);
        }
        let out = out?;
        reported?;
        Ok(out)
    }

    /// Records `encode` into a fresh encoder and submits it, all or nothing: an error while
    /// recording submits nothing, and a submission wgpu rejects (a destroyed buffer) runs
    /// none of its commands.
    pub(crate) fn submit_atomic<R>(
        &self, encode: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<R>,
    ) -> Result<R> {
        let (out, commands) = self.scoped(|| {
            let mut encoder = self.encoder();
            let out = encode(&mut encoder)?;
            Ok((out, encoder.finish()))
        })?;
        self.scoped(|| {
            self.queue.submit([commands]);
            Ok(())
        })?;
        Ok(out)
    }
}

/// The largest staging (upload or readback) buffer: the device's `max_buffer_size`, at
/// most 256 MiB (a multiple of 4), so an upload of a whole set needs no single buffer past
/// the limit and no single mapping of gigabytes.
fn staging_piece(limits: &wgpu::Limits) -> u64 {
    const PIECE: u64 = 256 << 20;
    (limits.max_buffer_size.min(PIECE) / wgpu::COPY_BUFFER_ALIGNMENT * wgpu::COPY_BUFFER_ALIGNMENT)
        .max(wgpu::COPY_BUFFER_ALIGNMENT)
}

/// A part of one in-stream write: `bytes` to `dst` (a buffer) at `offset`.
struct Segment<'a, B> {
    dst: &'a B,
    offset: u64,
    bytes: &'a [u8],
}

/// `writes` cut into segments of at most `piece` bytes (`piece` a multiple of 4), in order.
fn segments<'a, B>(writes: &[(&'a B, u64, &'a [u8])], piece: u64) -> Vec<Segment<'a, B>> {
    let mut out = Vec::new();
    for &(dst, offset, bytes) in writes {
        for (k, part) in bytes.chunks(piece as usize).enumerate() {
            out.push(Segment {
                dst,
                offset: offset + k as u64 * piece,
                bytes: part,
            });
        }
    }
    out
}

/// `segments` in order, grouped so each group's aligned bytes fit in `piece`.
fn pack<'s, 'a, B>(segments: &'s [Segment<'a, B>], piece: u64) -> Vec<&'s [Segment<'a, B>]> {
    let align = |n: usize| (n as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
    let mut groups = Vec::new();
    let (mut start, mut size) = (0, 0u64);
    for (i, s) in segments.iter().enumerate() {
        let n = align(s.bytes.len());
        if n == 0 {
            continue;
        }
        if size + n > piece && size > 0 {
            groups.push(&segments[start..i]);
            (start, size) = (i, 0);
        }
        size += n;
    }
    if size > 0 {
        groups.push(&segments[start..]);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_cut_into_pieces_that_cover_them_in_order() {
        let (a, b) = (0u8, 1u8);
        let big = vec![7u8; 40];
        let small = vec![9u8; 12];
        let writes: Vec<(&u8, u64, &[u8])> = vec![(&a, 100, &big), (&b, 4, &small), (&a, 0, &[])];
        let segs = segments(&writes, 16);
        let got: Vec<(u8, u64, usize)> = segs
            .iter()
            .map(|s| (*s.dst, s.offset, s.bytes.len()))
            .collect();
        assert_eq!(got, [(0, 100, 16), (0, 116, 16), (0, 132, 8), (1, 4, 12)]);
        let groups = pack(&segs, 16);
        let sizes: Vec<usize> = groups
            .iter()
            .map(|g| g.iter().map(|s| s.bytes.len()).sum())
            .collect();
        // 16 | 16 | 8 + 12 > 16, so 8 | 12.
        assert_eq!(sizes, [16, 16, 8, 12]);
        assert!(groups
            .iter()
            .all(|g| g.iter().map(|s| s.bytes.len() as u64).sum::<u64>() <= 16));
        let groups = pack(&segs, 64);
        assert_eq!(groups.len(), 1);
    }

    #[test]
    fn a_staging_piece_is_a_multiple_of_4_within_the_limit() {
        let mut limits = wgpu::Limits {
            max_buffer_size: 1 << 40,
            ..Default::default()
        };
        assert_eq!(staging_piece(&limits), 256 << 20);
        limits.max_buffer_size = 1001;
        assert_eq!(staging_piece(&limits), 1000);
    }

    /// Records a write of `value` into a fresh 4-byte buffer through `gpu`'s in-stream
    /// writes into `encoder`, and returns the buffer.
    fn recorded_write(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, value: u32) -> wgpu::Buffer {
        let dst = gpu.storage("upload test", 4);
        let bytes = value.to_le_bytes();
        gpu.write_in_stream(encoder, &[(&dst, 0, &bytes)]).unwrap();
        dst
    }

    #[test]
    fn upload_buffers_come_back_after_their_submission_ran_and_carry_new_bytes() {
        let ctx = crate::Context::new().unwrap();
        let gpu = ctx.gpu().unwrap();
        let pool = &gpu.uploads;
        let start = pool.idle();
        // Two recordings in flight: two buffers, neither back before the submit has run.
        let mut encoder = gpu.encoder();
        let a = recorded_write(gpu, &mut encoder, 7);
        let b = recorded_write(gpu, &mut encoder, 8);
        assert_eq!(pool.idle(), start.saturating_sub(2));
        gpu.queue.submit([encoder.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
        let idle = pool.idle();
        assert!(idle >= 2, "both upload buffers are back: {idle} idle");
        // A recording that reuses one writes its own bytes, not the last ones.
        let mut encoder = gpu.encoder();
        let c = recorded_write(gpu, &mut encoder, 9);
        assert_eq!(pool.idle(), idle - 1);
        gpu.queue.submit([encoder.finish()]);
        let read = gpu
            .read_blocking(&[(&a, 0, 4), (&b, 0, 4), (&c, 0, 4)])
            .unwrap();
        assert_eq!(bytemuck::cast_slice::<u8, u32>(&read), [7, 8, 9]);
        // A recording never submitted takes its buffer with it.
        let before = pool.idle();
        let mut encoder = gpu.encoder();
        recorded_write(gpu, &mut encoder, 10);
        drop(encoder);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
        assert_eq!(pool.idle(), before - 1);
    }
}
