//! Host transfers of a set with 16-bit tensors: every tensor (or one) as f32 values or
//! as 16-bit patterns, in the set's order, without padding, each slab's piece encoded in
//! the element type its binding holds (f32, or 16 bits packed two to a word). A 16-bit
//! tensor starts on a 64-element block, so a transfer of one tensor writes whole words of
//! its own (an odd tail's other half is its padding, written 0).

use crate::device::context::Gpu;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::storage::arena::Binding;
use crate::storage::layout::{Layout, Piece};

/// One slab's side of a transfer: its binding and the element type the binding holds;
/// `None`: the transfer leaves the slab alone.
pub(crate) type Target<'a> = Option<(&'a Binding, Dtype)>;

/// The tensors a transfer covers: one, or every tensor of the set.
pub(crate) fn covered(layout: &Layout, tensor: Option<usize>) -> Vec<usize> {
    match tensor {
        Some(t) => vec![t],
        None => (0..layout.tensors.len()).collect(),
    }
}

/// [`Error::LengthMismatch`] unless `got` is the covered tensors' element count.
pub(crate) fn check_len(
    layout: &Layout, tensor: Option<usize>, got: usize, role: &str,
) -> Result<()> {
    let expected: u64 = covered(layout, tensor)
        .iter()
        .map(|&t| layout.tensors[t].numel)
        .sum();
    if got as u64 == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what: role.to_string(),
            expected,
            got: got as u64,
        })
    }
}

/// The byte offset of piece `p` of tensor `t` in `b`, which holds `dtype` elements.
pub(crate) fn offset(b: &Binding, layout: &Layout, t: usize, p: &Piece, dtype: Dtype) -> u64 {
    match dtype {
        Dtype::F32 => b.piece_offset(layout, t, p),
        _ => b.offset + b.element_at(p.slab_offset) * 2,
    }
}

/// 16-bit patterns as bytes, padded to a whole word.
fn bytes16(bits: &[u16]) -> Vec<u8> {
    let mut bytes: Vec<u8> = bytemuck::cast_slice(bits).to_vec();
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

/// A write: a buffer, a byte offset, the bytes.
pub(crate) type Write<'a> = (&'a wgpu::Buffer, u64, Vec<u8>);

/// The writes that put `data` (the covered tensors concatenated, its length checked) into
/// `targets`, each piece encoded for its target by `encode`.
fn writes<'a, T>(
    layout: &Layout, targets: &[Target<'a>], tensor: Option<usize>, data: &[T],
    encode: impl Fn(&[T], Dtype) -> Vec<u8>,
) -> Vec<Write<'a>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for t in covered(layout, tensor) {
        for p in layout.pieces(t) {
            let part = &data[at + p.tensor_offset as usize..][..p.len as usize];
            // A sparse state's target holds only the blocks it keeps.
            if let Some((b, dtype)) = targets[p.slab].filter(|(b, _)| b.holds(p.slab_offset)) {
                out.push((
                    &b.buffer,
                    offset(b, layout, t, &p, dtype),
                    encode(part, dtype),
                ));
            }
        }
        at += layout.tensors[t].numel as usize;
    }
    out
}

/// The writes that put values `data` into `targets`, each piece as its target holds it:
/// f32, or rounded to nearest even.
pub(crate) fn value_writes<'a>(
    layout: &Layout, targets: &[Target<'a>], tensor: Option<usize>, data: &[f32],
) -> Vec<Write<'a>> {
    writes(layout, targets, tensor, data, |part, dtype| match dtype {
        Dtype::F32 => bytemuck::cast_slice(part).to_vec(),
        _ => bytes16(&part.iter().map(|&x| dtype.round(x)).collect::<Vec<_>>()),
    })
}

/// The writes that put 16-bit patterns `bits` into 16-bit `targets`.
pub(crate) fn bit_writes<'a>(
    layout: &Layout, targets: &[Target<'a>], tensor: Option<usize>, bits: &[u16],
) -> Vec<Write<'a>> {
    writes(layout, targets, tensor, bits, |part, _| bytes16(part))
}

/// Submits `writes` at once (all or nothing).
pub(crate) fn upload(gpu: &Gpu, writes: &[Write<'_>]) -> Result<()> {
    let refs: Vec<(&wgpu::Buffer, u64, &[u8])> = writes
        .iter()
        .map(|(b, at, bytes)| (*b, *at, bytes.as_slice()))
        .collect();
    gpu.upload(&refs)
}

/// Reads the covered tensors out of `targets` (one per slab they lie in), each piece as
/// its target holds it: the raw 16-bit patterns of a 16-bit target, or the f32 values'
/// bits of an f32 one. Syncs.
fn read_raw(
    gpu: &Gpu, layout: &Layout, targets: &[Target<'_>], tensor: Option<usize>,
) -> Result<Vec<(Dtype, Vec<u8>, usize)>> {
    let mut ranges = Vec::new();
    // Per piece: its type, length, and whether it is read (a sparse state's block it does
    // not keep reads as zeros).
    let mut pieces = Vec::new();
    for t in covered(layout, tensor) {
        for p in layout.pieces(t) {
            let (b, dtype) = targets[p.slab].expect("every slab of a read has a source");
            let bytes = (p.len * dtype.size()).next_multiple_of(4);
            let held = b.holds(p.slab_offset);
            if held {
                ranges.push((&b.buffer, offset(b, layout, t, &p, dtype), bytes));
            }
            pieces.push((dtype, p.len as usize, bytes, held));
        }
    }
    let bytes = match ranges.is_empty() {
        true => Vec::new(),
        false => gpu.read_blocking(&ranges)?,
    };
    let mut at = 0usize;
    Ok(pieces
        .into_iter()
        .map(|(dtype, len, size, held)| {
            let chunk = match held {
                true => bytes[at..at + size as usize].to_vec(),
                false => vec![0; size as usize],
            };
            at += if held { size as usize } else { 0 };
            (dtype, chunk, len)
        })
        .collect())
}

/// The covered tensors' values, concatenated (16-bit values widened exactly). Syncs.
pub(crate) fn read_values(
    gpu: &Gpu, layout: &Layout, targets: &[Target<'_>], tensor: Option<usize>,
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for (dtype, bytes, len) in read_raw(gpu, layout, targets, tensor)? {
        match dtype {
            Dtype::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            _ => out.extend(
                bytes
                    .chunks_exact(2)
                    .take(len)
                    .map(|b| dtype.widen(u16::from_le_bytes([b[0], b[1]]))),
            ),
        }
    }
    Ok(out)
}

/// The covered tensors' 16-bit patterns out of 16-bit `targets`, concatenated. Syncs.
pub(crate) fn read_bits(
    gpu: &Gpu, layout: &Layout, targets: &[Target<'_>], tensor: Option<usize>,
) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for (_, bytes, len) in read_raw(gpu, layout, targets, tensor)? {
        out.extend(
            bytes
                .chunks_exact(2)
                .take(len)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
    }
    Ok(out)
}
