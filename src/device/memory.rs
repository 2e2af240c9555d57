//! What a parameter set or an optimizer is about to allocate, checked before anything is
//! allocated, so a set too large for the machine is [`Error::OutOfMemory`] and the Context
//! stays usable.
//!
//! A discrete or integrated GPU's memory is guarded by wgpu itself: the shared instance
//! sets a memory budget threshold (Vulkan with `VK_EXT_memory_budget`, D3D12) and every
//! allocation runs in the call's error scope. A CPU adapter (lavapipe, llvmpipe) and the
//! CPU reference allocate system memory lazily, so an oversized request would succeed and
//! then be killed on first touch: for those, the request is held to the memory the system
//! reports available.

use crate::consts::CHUNK_ELEMS;
use crate::device::context::Gpu;
use crate::error::{Error, Result};

/// The share (percent) of the system's available memory one request may take on a CPU
/// adapter or the CPU reference.
const HOST_SHARE_PERCENT: u64 = 90;

/// Bytes of device memory per element of a slab arena (one f32).
const ARENA_BYTES_PER_ELEM: u64 = 4;

/// Bytes a parameter set allocates for `len` packed elements and `tensors` tensors:
/// parameters and gradients, the chunk tables and norm workspace (a chunk row and a
/// partial per [`CHUNK_ELEMS`] elements, at least one per tensor), per-tensor sums and norms.
pub(crate) fn set_bytes(len: u64, tensors: u64) -> u64 {
    let chunks = len / u64::from(CHUNK_ELEMS) + tensors;
    (2 * ARENA_BYTES_PER_ELEM)
        .saturating_mul(len)
        .saturating_add(chunks.saturating_mul(16 + 8))
        .saturating_add(tensors.saturating_mul(8 + 8 + 8 + 4))
}

/// Bytes an optimizer with `states` state arenas allocates over `len` packed elements.
pub(crate) fn optimizer_bytes(len: u64, states: u64, tensors: u64) -> u64 {
    let chunks = len / u64::from(CHUNK_ELEMS) + tensors;
    (states * ARENA_BYTES_PER_ELEM)
        .saturating_mul(len)
        .saturating_add(chunks.saturating_mul(8))
        .saturating_add(tensors.saturating_mul(8 + 4))
}

/// [`Error::OutOfMemory`] if `bytes` for `what` cannot fit: on a CPU adapter or the CPU
/// reference, more than 90% of the memory the system reports available (Linux
/// `/proc/meminfo`; elsewhere not checked here). GPUs are left to wgpu (see the module
/// docs).
pub(crate) fn reserve(gpu: Option<&Gpu>, what: &str, bytes: u64) -> Result<()> {
    let host_memory = gpu.is_none_or(|g| g.info.device_type == wgpu::DeviceType::Cpu);
    let Some(available) = host_memory.then(host_available_bytes).flatten() else {
        return Ok(());
    };
    let budget = available / 100 * HOST_SHARE_PERCENT;
    if bytes > budget {
        return Err(Error::OutOfMemory(format!(
            "{what} needs {bytes} bytes ({:.1} GiB); this adapter uses system memory, of which \
             {available} bytes ({:.1} GiB) are available",
            gib(bytes),
            gib(available)
        )));
    }
    Ok(())
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn host_available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_past_the_host_memory_is_out_of_memory() {
        if host_available_bytes().is_none() {
            return; // not Linux: nothing to hold the request to
        }
        let err = reserve(None, "a test set", u64::MAX / 2).unwrap_err();
        assert!(
            matches!(err, Error::OutOfMemory(ref m) if m.contains("a test set")),
            "{err}"
        );
        reserve(None, "a small set", 1 << 20).unwrap();
    }

    #[test]
    fn byte_counts_saturate_instead_of_wrapping() {
        assert_eq!(set_bytes(u64::MAX / 2, 1), u64::MAX);
        assert!(optimizer_bytes(1 << 20, 2, 3) >= 8 << 20);
    }
}
