//! 8-bit optimizer states on the device (bitsandbytes' blockwise dynamic quantization):
//! where each slab's codes, absmax and f32 states lie, and their host-side conversion to
//! and from values (`States::get`, checkpoints). The update kernel's side is
//! `shaders/q8_update.wgsl`; the arithmetic is `reference::quantize_block`'s.
//!
//! A slab's state slot is one buffer of u32 words, in three regions:
//!
//! | region  | words              | holds                                                     |
//! |---------|--------------------|-----------------------------------------------------------|
//! | codes   | one per slab vec4  | the four 8-bit codes of vec4 i in word i, lane j in byte j |
//! | absmax  | one per row        | row r's absmax (f32 bits)                                  |
//! | wide    | four per wide vec4 | f32 states of the tensors below the rule's 8-bit size      |
//!
//! A **row** is one quantization block: up to 256 elements of one tensor, counted from its
//! first element (bitsandbytes' blocks), one workgroup quarter of the update. The row table
//! (binding 17) starts with a header `(absmax base, wide base, rows, 0)`, then one
//! `(first vec4, elements, flags, wide vec4)` per row.

use crate::device::context::Gpu;
use crate::error::{Error, Result};
use crate::reference::{dynamic_bounds, dynamic_map, quantize_block, QUANT_BLOCK};
use crate::storage::arena::{slab_images, tensor_values, whole_binding, Arena, Binding};
use crate::storage::layout::Layout;

/// Row flag: the row's tensor keeps f32 states (below the rule's 8-bit size).
pub(crate) const Q8_WIDE: u32 = 1;

/// One slab's quantized-state geometry.
#[derive(Clone, Debug)]
pub(crate) struct Q8Slab {
    /// The header, then one row per quantization block, in slab order.
    pub rows: Vec<[u32; 4]>,
    /// Words of each state slot's buffer.
    pub words: u64,
}

impl Q8Slab {
    /// The number of rows (quantization blocks).
    pub(crate) fn row_count(&self) -> u32 {
        self.rows[0][2]
    }

    fn absmax_base(&self) -> usize {
        self.rows[0][0] as usize
    }

    fn wide_base(&self) -> usize {
        self.rows[0][1] as usize
    }
}

/// Each slab's rows for `layout`, the tensors for which `wide(t)` holds keeping f32
/// states. [`Error::NotSupported`] when a tensor crosses a slab boundary off a multiple of
/// 256 of its elements (a block would lie in two buffers); slabs whose capacity is a
/// multiple of 16384 elements (the device's, unless a caller forces another) never do.
pub(crate) fn q8_slabs(layout: &Layout, wide: impl Fn(usize) -> bool) -> Result<Vec<Q8Slab>> {
    let mut rows: Vec<Vec<[u32; 4]>> = layout.slabs.iter().map(|_| Vec::new()).collect();
    let mut wide_vec4s = vec![0u32; layout.slabs.len()];
    for t in 0..layout.tensors.len() {
        let is_wide = wide(t);
        for p in layout.pieces(t) {
            if !is_wide && p.tensor_offset % QUANT_BLOCK as u64 != 0 {
                return Err(Error::NotSupported(format!(
                    "8-bit states for tensor {:?}: it crosses a slab boundary {} elements \
                     into it, not on a 256-element quantization block; use slabs of a \
                     multiple of 16384 elements",
                    layout.tensors[t].name, p.tensor_offset
                )));
            }
            let mut at = 0u64;
            while at < p.len {
                let count = (p.len - at).min(QUANT_BLOCK as u64) as u32;
                let first = ((p.slab_offset + at) / 4) as u32;
                let (flags, wide_at) = if is_wide {
                    let w = wide_vec4s[p.slab];
                    wide_vec4s[p.slab] += count.div_ceil(4);
                    (Q8_WIDE, w)
                } else {
                    (0, 0)
                };
                rows[p.slab].push([first, count, flags, wide_at]);
                at += u64::from(count);
            }
        }
    }
    Ok(layout
        .slabs
        .iter()
        .zip(rows)
        .zip(wide_vec4s)
        .map(|((slab, rows), wide)| {
            let vec4s = slab.len.div_ceil(4);
            let absmax_base = vec4s;
            let wide_base = absmax_base + rows.len() as u64;
            let words = wide_base + 4 * u64::from(wide);
            let header = [absmax_base as u32, wide_base as u32, rows.len() as u32, 0];
            let mut table = Vec::with_capacity(rows.len() + 1);
            table.push(header);
            table.extend(rows);
            Q8Slab { rows: table, words }
        })
        .collect())
}

/// The code of 0 in slot `slot`'s map, four to a word: a fresh state (slot 0's map is
/// signed, code 127; the others' unsigned, code 0).
pub(crate) fn zero_word(slot: usize) -> u32 {
    if slot == 0 {
        0x7f7f_7f7f
    } else {
        0
    }
}

/// A fresh slot buffer's words: zero codes, zero absmax, zero f32 states.
pub(crate) fn fresh_words(slab: &Q8Slab, slot: usize) -> Vec<u32> {
    let mut words = vec![0u32; slab.words as usize];
    words[..slab.absmax_base()].fill(zero_word(slot));
    words
}

/// State slot `slot`'s arena: per slab one buffer of its words, fresh (every code that of
/// 0, every absmax and f32 state 0).
pub(crate) fn state_arena(gpu: &Gpu, slabs: &[Q8Slab], slot: usize, label: &str) -> Arena {
    Arena::Gpu(
        slabs
            .iter()
            .map(|slab| {
                let binding = whole_binding(gpu, label, slab.words * 4);
                let words = fresh_words(slab, slot);
                gpu.queue
                    .write_buffer(&binding.buffer, 0, bytemuck::cast_slice(&words));
                binding
            })
            .collect(),
    )
}

/// Slot `slot`'s values (from `bindings`, its arena) tensor by tensor, all concatenated in
/// the set's order: each slab's words read back in one submission and dequantized.
pub(crate) fn read_values(
    gpu: &Gpu, layout: &Layout, slabs: &[Q8Slab], bindings: &[Binding], slot: usize,
) -> Result<Vec<f32>> {
    let ranges: Vec<_> = bindings
        .iter()
        .map(|b| (&b.buffer, 0, b.data_size))
        .collect();
    let bytes = gpu.read_blocking(&ranges)?;
    let mut at = 0usize;
    let images: Vec<Vec<f32>> = slabs
        .iter()
        .zip(&layout.slabs)
        .map(|(slab, info)| {
            let n = slab.words as usize;
            let words: Vec<u32> = bytes[at..at + 4 * n]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            at += 4 * n;
            dequantize(slab, &words, slot, info.len as usize)
        })
        .collect();
    Ok(tensor_values(layout, &images))
}

/// The writes that put `values` (every tensor's, concatenated in the set's order) into
/// slot `slot`'s `bindings`, each slab's words whole ([`quantize`]).
pub(crate) fn value_words(
    layout: &Layout, slabs: &[Q8Slab], slot: usize, values: &[f32],
) -> Vec<Vec<u32>> {
    let images = slab_images(layout, values);
    slabs
        .iter()
        .zip(&images)
        .map(|(slab, image)| quantize(slab, image, slot))
        .collect()
}

/// The map of slot `slot` (bitsandbytes: the first state signed, the others unsigned).
fn map_of(slot: usize) -> [f32; 256] {
    dynamic_map(slot == 0)
}

/// Slot `slot`'s values over one slab (its virtual space, `len` elements): each quantized
/// row dequantized (`map[code] · absmax`), each wide row as kept; elements of no row 0.
pub(crate) fn dequantize(slab: &Q8Slab, words: &[u32], slot: usize, len: usize) -> Vec<f32> {
    let map = map_of(slot);
    let mut image = vec![0.0f32; len];
    for (r, row) in slab.rows[1..].iter().enumerate() {
        let [first, count, flags, wide_at] = row.map(|x| x as usize);
        for e in 0..count {
            let i = first * 4 + e;
            image[i] = if flags as u32 & Q8_WIDE != 0 {
                f32::from_bits(words[slab.wide_base() + wide_at * 4 + e])
            } else {
                let code = (words[i / 4] >> (8 * (i % 4))) & 0xff;
                map[code as usize] * f32::from_bits(words[slab.absmax_base() + r])
            };
        }
    }
    image
}

/// Slot `slot`'s buffer words holding `image` (one slab's values, as [`dequantize`] gives
/// them): each wide row as it is, each quantized row requantized so that it dequantizes to
/// the same values bit for bit where some absmax does that ([`requantize_block`]; values
/// this storage produced always do), else quantized afresh.
pub(crate) fn quantize(slab: &Q8Slab, image: &[f32], slot: usize) -> Vec<u32> {
    let map = map_of(slot);
    let mut words = fresh_words(slab, slot);
    for (r, row) in slab.rows[1..].iter().enumerate() {
        let [first, count, flags, wide_at] = row.map(|x| x as usize);
        let values = &image[first * 4..first * 4 + count];
        if flags as u32 & Q8_WIDE != 0 {
            for (e, &x) in values.iter().enumerate() {
                words[slab.wide_base() + wide_at * 4 + e] = x.to_bits();
            }
            continue;
        }
        let (codes, absmax) = requantize_block(values, &map);
        words[slab.absmax_base() + r] = absmax.to_bits();
        for (e, c) in codes.into_iter().enumerate() {
            let i = first * 4 + e;
            let shift = 8 * (i % 4);
            words[i / 4] = (words[i / 4] & !(0xff << shift)) | (u32::from(c) << shift);
        }
    }
    words
}

/// Codes and an absmax that dequantize to `values` exactly, when `values` came from this
/// quantization: the block's largest `|x|` is `A` itself (code 1.0) or `0.99297·A`
/// rounded (the signed map's lowest code, and code 254), so `A` is searched for among the
/// few floats either product rounds from. Values from elsewhere (a PyTorch moment) are
/// quantized afresh ([`quantize_block`]).
pub(crate) fn requantize_block(values: &[f32], map: &[f32; 256]) -> (Vec<u8>, f32) {
    let exact = |a: f32| -> Option<Vec<u8>> {
        values
            .iter()
            .map(|&x| {
                let c = (0..256).find(|&c| map[c] * a == x && (x != 0.0 || map[c] == 0.0));
                c.map(|c| c as u8)
            })
            .collect()
    };
    let largest = values
        .iter()
        .copied()
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(0.0);
    if largest.is_finite() && largest != 0.0 {
        // The largest magnitude is A (code 1) or 0.99297·A (the signed map's lowest code,
        // whose magnitude code 254 shares): try both.
        for extreme in [map[255], map[0].abs()] {
            let bits = (largest.abs() / extreme).to_bits() as i64;
            for delta in [0i64, 1, -1, 2, -2, 3, -3] {
                let a = f32::from_bits((bits + delta) as u32);
                let whole = values.len() == QUANT_BLOCK;
                if let Some(codes) = exact(a).filter(|_| whole || a >= 1e-38) {
                    return (codes, a);
                }
            }
        }
    }
    quantize_block(values, &dynamic_bounds(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::quantize_dequantize;

    /// Values this storage produced round-trip through the host conversions bit for bit,
    /// whichever sign the block's largest value has.
    #[test]
    fn requantizing_dequantized_blocks_is_exact() {
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for slot in [0usize, 1] {
            let map = map_of(slot);
            for n in [1usize, 5, 255, 256] {
                for scale in [1e-6f32, 3.0, 1e4] {
                    let mut values: Vec<f32> = (0..n)
                        .map(|_| next() * scale)
                        .map(|x| if slot == 0 { x } else { x.abs() })
                        .collect();
                    if slot == 0 && n > 2 {
                        // The largest magnitude negative, another just below it positive
                        // (code 254, of the same magnitude as code 0).
                        values[0] = -scale;
                        values[1] = 0.995 * scale;
                    }
                    quantize_dequantize(&mut values, &map);
                    let (codes, a) = requantize_block(&values, &map);
                    let back: Vec<f32> = codes.iter().map(|&c| map[c as usize] * a).collect();
                    assert_eq!(
                        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        values.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        "slot {slot}, {n} values of scale {scale}"
                    );
                }
            }
        }
    }
}
