//! Host transfers of a 16-bit set's packed buffers: every tensor (or one) as `u16`
//! patterns, in the set's order, without padding. Each tensor starts on a 64-element block,
//! so a transfer of one tensor writes whole words of its own (an odd tail's other half is
//! its padding, written 0).

use crate::arena::Binding;
use crate::context::Gpu;
use crate::error::{Error, Result};
use crate::layout::Layout;

/// The tensors a transfer covers: one, or every tensor of the set.
fn covered(layout: &Layout, tensor: Option<usize>) -> Vec<usize> {
    match tensor {
        Some(t) => vec![t],
        None => (0..layout.tensors.len()).collect(),
    }
}

/// Elements a transfer over `tensors` moves.
fn numel(layout: &Layout, tensors: &[usize]) -> u64 {
    tensors.iter().map(|&t| layout.tensors[t].numel).sum()
}

/// Writes `bits` (the covered tensors concatenated) into the 16-bit `bindings`, in one
/// submission.
pub(crate) fn write_bits(
    gpu: &Gpu,
    layout: &Layout,
    bindings: &[Binding],
    tensor: Option<usize>,
    bits: &[u16],
    role: &'static str,
) -> Result<()> {
    let tensors = covered(layout, tensor);
    let expected = numel(layout, &tensors);
    if bits.len() as u64 != expected {
        return Err(Error::LengthMismatch {
            what: role.to_string(),
            expected,
            got: bits.len() as u64,
        });
    }
    // Per piece: its bytes, the tail padded to a whole word with 0 (the tensor's padding).
    let mut images: Vec<(usize, u64, Vec<u8>)> = Vec::new();
    let mut at = 0usize;
    for &t in &tensors {
        for piece in layout.pieces(t) {
            let n = piece.len as usize;
            let mut bytes: Vec<u8> = bytemuck::cast_slice(&bits[at..at + n]).to_vec();
            bytes.resize(bytes.len().next_multiple_of(4), 0);
            images.push((piece.slab, piece.slab_offset * 2, bytes));
            at += n;
        }
    }
    let writes: Vec<(&wgpu::Buffer, u64, &[u8])> = images
        .iter()
        .map(|(s, offset, bytes)| (&bindings[*s].buffer, *offset, bytes.as_slice()))
        .collect();
    gpu.upload(&writes)
}

/// Reads the covered tensors' 16-bit patterns out of `bindings`, concatenated. Syncs.
pub(crate) fn read_bits(
    gpu: &Gpu,
    layout: &Layout,
    bindings: &[Binding],
    tensor: Option<usize>,
) -> Result<Vec<u16>> {
    let tensors = covered(layout, tensor);
    let mut ranges = Vec::new();
    let mut lens = Vec::new();
    for &t in &tensors {
        for piece in layout.pieces(t) {
            let bytes = (piece.len * 2).next_multiple_of(4);
            ranges.push((&bindings[piece.slab].buffer, piece.slab_offset * 2, bytes));
            lens.push(piece.len as usize);
        }
    }
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = gpu.read_blocking(&ranges)?;
    let mut out = Vec::with_capacity(numel(layout, &tensors) as usize);
    let mut at = 0usize;
    for ((_, _, size), len) in ranges.iter().zip(lens) {
        let words: Vec<u16> = bytes[at..at + *size as usize]
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        out.extend_from_slice(&words[..len]);
        at += *size as usize;
    }
    Ok(out)
}

/// A slab image of f32 values rounded to bf16 (nearest even), as the bytes of its packed
/// words.
pub(crate) fn rounded_bytes(values: &[f32]) -> Vec<u8> {
    let bits: Vec<u16> = values
        .iter()
        .map(|&x| crate::reference::f32_to_bf16(x))
        .collect();
    let mut bytes: Vec<u8> = bytemuck::cast_slice(&bits).to_vec();
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}
