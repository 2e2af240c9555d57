//! What a parameter set or an optimizer is about to allocate, checked before anything is
//! allocated, so a set too large for the machine is [`Error::OutOfMemory`] and the Context
//! stays usable.
//!
//! On Vulkan with `VK_EXT_memory_budget` the request is held to what the device's
//! device-local heaps may still take (budget − usage, the threshold wgpu's own check
//! applies), so a set too large for the GPU is `OutOfMemory` saying the bytes needed and
//! available on every such adapter (before, an H200 gave wgpu's raw create_buffer error).
//! Elsewhere a GPU's memory is guarded by wgpu itself: the shared instance sets a memory
//! budget threshold (D3D12 too) and every allocation runs in the call's error scope. A CPU
//! adapter (lavapipe, llvmpipe) and the CPU reference allocate system memory lazily, so an
//! oversized request would succeed and then be killed on first touch: for those, the
//! request is also held to the memory the system reports available.

use crate::consts::CHUNK_ELEMS;
use crate::device::context::{Context, Gpu};
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

/// Bytes an optimizer allocates over `len` packed elements: `state_elems` state elements
/// (each dense state `len`, a sparse one its kept blocks), tables and workspace.
pub(crate) fn optimizer_bytes(len: u64, state_elems: u64, tensors: u64) -> u64 {
    let chunks = len / u64::from(CHUNK_ELEMS) + tensors;
    ARENA_BYTES_PER_ELEM
        .saturating_mul(state_elems)
        .saturating_add(chunks.saturating_mul(8))
        .saturating_add(tensors.saturating_mul(8 + 4))
}

impl Context {
    /// Bytes of device memory this device may still allocate, as its driver reports them:
    /// on Vulkan with `VK_EXT_memory_budget`, `heapBudget − heapUsage` of its roomiest
    /// device-local heap. `None` on other backends, without the extension, and on the CPU
    /// reference. A parameter set or optimizer needing more than 90% of it is
    /// [`Error::OutOfMemory`] before anything is allocated.
    pub fn memory_available(&self) -> Option<u64> {
        device_local_available(&self.gpu()?.device)
    }
}

/// [`Error::OutOfMemory`] if `bytes` for `what` cannot fit: on a CPU adapter or the CPU
/// reference, more than 90% of the memory the system reports available (Linux
/// `/proc/meminfo`; elsewhere not checked here). GPUs are left to wgpu (see the module
/// docs).
pub(crate) fn reserve(gpu: Option<&Gpu>, what: &str, bytes: u64) -> Result<()> {
    if let Some(available) = gpu.and_then(|g| device_local_available(&g.device)) {
        within(what, bytes, available, "this device's memory heaps have")?;
    }
    let host_memory = gpu.is_none_or(|g| g.info.device_type == wgpu::DeviceType::Cpu);
    match host_memory.then(host_available_bytes).flatten() {
        Some(available) => within(
            what,
            bytes,
            available,
            "this adapter uses system memory, which has",
        ),
        None => Ok(()),
    }
}

/// [`Error::OutOfMemory`] saying the bytes needed and `available` (where: `source`) when
/// `bytes` is more than [`HOST_SHARE_PERCENT`] of `available`.
fn within(what: &str, bytes: u64, available: u64, source: &str) -> Result<()> {
    if bytes <= available / 100 * HOST_SHARE_PERCENT {
        return Ok(());
    }
    Err(Error::OutOfMemory(format!(
        "{what} needs {bytes} bytes ({:.1} GiB); {source} {available} bytes ({:.1} GiB) \
         available, and one request may take {HOST_SHARE_PERCENT}% of it",
        gib(bytes),
        gib(available)
    )))
}

/// `result` of allocating `bytes` for `what`, with an allocation the device refused (an
/// out-of-memory error from wgpu, on an adapter whose free memory was not known up front)
/// said in clipstep's words: the bytes needed, and the device's reason.
pub(crate) fn refused<T>(result: Result<T>, what: &str, bytes: u64) -> Result<T> {
    result.map_err(|e| match e {
        Error::OutOfMemory(reason) => Error::OutOfMemory(format!(
            "{what} needs {bytes} bytes ({:.1} GiB); the device could not allocate them \
             ({})",
            gib(bytes),
            reason.trim()
        )),
        other => other,
    })
}

/// Bytes `device` may still allocate in device memory: the most of its Vulkan
/// device-local heaps (every heap when none is device-local), `heapBudget − heapUsage` from
/// `VK_EXT_memory_budget`. `None` on other backends or without the extension.
pub(crate) fn device_local_available(device: &wgpu::Device) -> Option<u64> {
    #[cfg(not(any(target_vendor = "apple", target_arch = "wasm32")))]
    {
        use ash::vk;
        // SAFETY: the HAL device is only read (its instance and physical device handles);
        // vkGetPhysicalDeviceMemoryProperties2 is core in the Vulkan 1.1 instances it is
        // called on, and the budget structure is chained only when the device enabled
        // VK_EXT_memory_budget.
        unsafe {
            let hal = device.as_hal::<wgpu::hal::api::Vulkan>()?;
            if !hal
                .enabled_device_extensions()
                .contains(&ash::ext::memory_budget::NAME)
            {
                return None;
            }
            let shared = hal.shared_instance();
            if shared.instance_api_version() < vk::API_VERSION_1_1 {
                return None;
            }
            let mut budget = vk::PhysicalDeviceMemoryBudgetPropertiesEXT::default();
            let mut props = vk::PhysicalDeviceMemoryProperties2::default().push_next(&mut budget);
            shared
                .raw_instance()
                .get_physical_device_memory_properties2(hal.raw_physical_device(), &mut props);
            let heaps = props.memory_properties.memory_heap_count as usize;
            let flags: Vec<vk::MemoryHeapFlags> = props.memory_properties.memory_heaps[..heaps]
                .iter()
                .map(|h| h.flags)
                .collect();
            let local = flags
                .iter()
                .any(|f| f.contains(vk::MemoryHeapFlags::DEVICE_LOCAL));
            // One set's buffers come from one heap: the roomiest is what it may have.
            (0..heaps)
                .filter(|&i| !local || flags[i].contains(vk::MemoryHeapFlags::DEVICE_LOCAL))
                .map(|i| budget.heap_budget[i].saturating_sub(budget.heap_usage[i]))
                .max()
        }
    }
    #[cfg(any(target_vendor = "apple", target_arch = "wasm32"))]
    {
        let _ = device;
        None
    }
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
    fn a_request_past_a_devices_budget_says_needed_and_available() {
        within("a set", 90, 100, "the heaps have").unwrap();
        let err = within("a set", 3 << 30, 2 << 30, "this device's memory heaps have");
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("needs 3221225472 bytes (3.0 GiB)"), "{msg}");
        assert!(
            msg.contains("have 2147483648 bytes (2.0 GiB) available"),
            "{msg}"
        );
        let raw = Err::<(), _>(Error::OutOfMemory(
            "In Device::create_buffer, label = 'grads'".into(),
        ));
        let msg = refused(raw, "this parameter set", 1 << 40)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("this parameter set needs 1099511627776 bytes (1024.0 GiB)"),
            "{msg}"
        );
        assert!(msg.contains("label = 'grads'"), "{msg}");
    }

    #[test]
    fn byte_counts_saturate_instead_of_wrapping() {
        assert_eq!(set_bytes(u64::MAX / 2, 1), u64::MAX);
        assert!(optimizer_bytes(1 << 20, 2 << 20, 3) >= 8 << 20);
    }
}
