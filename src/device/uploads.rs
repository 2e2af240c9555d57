//! The upload buffers of in-stream writes ([`crate::device::context::Gpu::write_in_stream`]),
//! kept for reuse: a step's options go through one small host-visible buffer, and creating
//! one per step (a driver allocation and bind, `vkCreateBuffer` and friends) was the larger
//! part of a step's host encode time on a real GPU's driver. A buffer used by a recording is
//! mapped again by wgpu once that recording's submission has run
//! ([`wgpu::CommandEncoder::map_buffer_on_submit`]) and comes back here; a recording that is
//! never submitted drops its buffer with it. Nothing is shared between two recordings in
//! flight: a buffer is in the pool only while it is mapped and no submission uses it.

use std::sync::{Arc, Mutex};

/// Bytes of every pooled upload buffer: a step's options and its groups' table fit many
/// times over; a larger write gets a buffer of its own, made and dropped as before.
const POOLED_UPLOAD_BYTES: u64 = 16 << 10;

/// The most mapped buffers kept (more recordings in flight than this make new ones).
const MAX_POOLED: usize = 8;

/// Mapped, idle upload buffers of [`POOLED_UPLOAD_BYTES`] each.
#[derive(Default)]
pub(crate) struct UploadPool {
    free: Arc<Mutex<Vec<wgpu::Buffer>>>,
}

impl UploadPool {
    /// A mapped upload buffer (`MAP_WRITE | COPY_SRC`) of at least `size` bytes: an idle
    /// pooled one where `size` fits [`POOLED_UPLOAD_BYTES`] and one is idle, else a new one
    /// mapped at creation (pooled size where it fits, so it can come back).
    pub(crate) fn take(&self, device: &wgpu::Device, size: u64) -> wgpu::Buffer {
        if size <= POOLED_UPLOAD_BYTES {
            if let Some(buffer) = self.lock().pop() {
                return buffer;
            }
        }
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("clipstep options"),
            size: size.max(POOLED_UPLOAD_BYTES),
            // MAP_WRITE maps this buffer itself; without it wgpu maps a hidden staging
            // buffer and records one more copy into this one when it is unmapped.
            usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        })
    }

    /// After `buffer` (from [`UploadPool::take`], written and unmapped) was recorded into
    /// `encoder`: maps it again once the encoder's submission has run, and keeps it then.
    /// A buffer larger than the pooled size is not kept.
    pub(crate) fn recycle_on_submit(&self, encoder: &wgpu::CommandEncoder, buffer: &wgpu::Buffer) {
        if buffer.size() != POOLED_UPLOAD_BYTES {
            return;
        }
        let free = Arc::clone(&self.free);
        let kept = buffer.clone();
        encoder.map_buffer_on_submit(buffer, wgpu::MapMode::Write, .., move |mapped| {
            let mut free = free.lock().unwrap_or_else(|e| e.into_inner());
            if mapped.is_ok() && free.len() < MAX_POOLED {
                free.push(kept);
            }
        });
    }

    /// How many mapped buffers are idle now.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<wgpu::Buffer>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}
