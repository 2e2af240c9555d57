//! The 8-bit state part of an update kernel (`shaders/q8_update.wgsl` is its entry; the
//! buffers' layout is `crate::storage::quantized`'s): generated per rule for its number of
//! state slots, with the interface of every state part (`load_state`, `store_state`), so a
//! rule's body runs on 8-bit states unchanged. State slot 0 uses bitsandbytes' signed
//! dynamic map, the others the unsigned one (bitsandbytes' `qmap1`, `qmap2`).
//!
//! - `load_state(k, i)`: vec4 i dequantized, `exact(map[code]·absmax)` per lane, or the
//!   row's f32 states on a wide row (a tensor below the rule's 8-bit size);
//! - `store_state(k, i, x)`: x kept in private memory until the row's absmax is known;
//! - `q8_reduce`: each state's `max |x|` over the row's live lanes, into workgroup atomics;
//! - `q8_store`: after the barrier, each vec4's codes (the twin of
//!   `reference::quantize_block`: whole rows scale by `x · (1 / max(A, 1e-38))`, a partial
//!   row divides by it, `clamp(·, −1, 1)`, then the number of bounds below it: its
//!   bucket's least code from a table, and up by one while the next bound is below it,
//!   [`TABLE_SCAN`] times; 0 straight to the code of 0) and the row's absmax.
//!
//! The maps table (binding 18, [`maps_table`]) holds the signed map, the unsigned map,
//! their bounds (`reference::dynamic_bounds`), 256 f32 each, then each map's bucket table.

use crate::kernels::abi::slot_case;
use crate::reference::{dynamic_bounds, dynamic_map};

/// Exponents below this (|s| < 2^-24) take the code of 0 in both maps without a table:
/// their smallest bounds are ±2.75e-7 (signed) and 1.6e-7 (unsigned).
const TABLE_MIN_EXPONENT: u32 = 103;
/// Top mantissa bits that pick a bucket within an octave.
const TABLE_MANTISSA_BITS: u32 = 6;
/// Buckets per sign: the octaves from 2^-24 to 2^0, 64 each.
const TABLE_BUCKETS: u32 = (128 - TABLE_MIN_EXPONENT) << TABLE_MANTISSA_BITS;
/// Steps a code may still move after its bucket's start (the most codes a bucket spans
/// in either map; `tests::the_table_search_is_the_binary_search` checks it).
pub(crate) const TABLE_SCAN: u32 = 2;

/// The first code of `s`'s bucket (sign, exponent, top 6 mantissa bits of the clamped,
/// non-NaN `s`), from a table of each bucket's least code; `None` below 2^-24.
fn bucket(s: f32) -> Option<usize> {
    let bits = s.to_bits();
    let (negative, mag) = (bits >> 31, bits & 0x7fff_ffff);
    let exponent = mag >> 23;
    (exponent >= TABLE_MIN_EXPONENT).then(|| {
        let k = (mag >> (23 - TABLE_MANTISSA_BITS)) & ((1 << TABLE_MANTISSA_BITS) - 1);
        let e = exponent - TABLE_MIN_EXPONENT;
        (negative * TABLE_BUCKETS + (e << TABLE_MANTISSA_BITS) + k) as usize
    })
}

/// Per bucket of [`bucket`], the least code of its values: `#bounds < lo` for a positive
/// bucket `[lo, hi)`, `#bounds < −hi` for a negative one `(−hi, −lo]`.
fn bucket_starts(bounds: &[f32; 256]) -> Vec<f32> {
    let count = |x: f32| bounds[..255].iter().filter(|&&b| b < x).count() as f32;
    let mut table = vec![0.0; 2 * TABLE_BUCKETS as usize];
    for negative in [0u32, 1] {
        for e in TABLE_MIN_EXPONENT..128 {
            for k in 0..1u32 << TABLE_MANTISSA_BITS {
                let shift = 23 - TABLE_MANTISSA_BITS;
                let lo = f32::from_bits((e << 23) | (k << shift));
                let hi = f32::from_bits((e << 23) + ((k + 1) << shift));
                let at = bucket(if negative == 1 { -lo } else { lo }).expect("in the table");
                table[at] = if negative == 1 { count(-hi) } else { count(lo) };
            }
        }
    }
    table
}

/// The shader's search, on the host: the bucket's least code, then up by one while the
/// next bound is below `s` ([`TABLE_SCAN`] times); NaN takes code 0 (the binary search's).
/// The tests hold it to the reference's binary search.
#[cfg(test)]
fn table_code(s: f32, bounds: &[f32; 256], starts: &[f32], zero: u8) -> u8 {
    if s.is_nan() {
        return 0;
    }
    let c = s.clamp(-1.0, 1.0);
    let mut code = match bucket(c) {
        Some(at) => starts[at] as usize,
        None => usize::from(zero),
    };
    for _ in 0..TABLE_SCAN {
        code += usize::from(bounds[code] < c);
    }
    code as u8
}

/// The maps table bound at 18: signed map, unsigned map, signed bounds, unsigned bounds
/// (256 each), then each map's bucket starts ([`bucket_starts`], 3,200 each; codes as f32).
pub(crate) fn maps_table() -> Vec<f32> {
    let (signed, unsigned) = (dynamic_map(true), dynamic_map(false));
    let (sb, ub) = (dynamic_bounds(&signed), dynamic_bounds(&unsigned));
    let mut table = Vec::with_capacity(1024 + 4 * TABLE_BUCKETS as usize);
    table.extend(signed);
    table.extend(unsigned);
    table.extend(sb);
    table.extend(ub);
    table.extend(bucket_starts(&sb));
    table.extend(bucket_starts(&ub));
    table
}

/// The WGSL state part for `slots` 8-bit state slots.
pub(crate) fn states_source(slots: usize) -> String {
    let mut out = String::from(
        "// The rule's optimizer states, 8-bit (generated: src/kernels/q8.rs; the buffers' \
         layout: src/storage/quantized.rs).\n",
    );
    for k in 0..slots {
        out.push_str(&format!(
            "@group(0) @binding({}) var<storage, read_write> state{k}: array<u32>;\n",
            2 + k
        ));
    }
    out.push_str(&format!(
        "@group(0) @binding(17) var<storage, read> q8_rows: array<vec4<u32>>;\n\
         @group(0) @binding(18) var<storage, read> q8_maps: array<f32>;\n\n\
         const Q8_SLOTS: u32 = {slots}u;\n\
         const Q8_TABLES: u32 = 1024u;\n\
         const Q8_TABLE_MIN_EXPONENT: u32 = {TABLE_MIN_EXPONENT}u;\n\
         const Q8_TABLE_BITS: u32 = {TABLE_MANTISSA_BITS}u;\n\
         const Q8_TABLE_BUCKETS: u32 = {TABLE_BUCKETS}u;\n\
         const Q8_SCAN: u32 = {TABLE_SCAN}u;\n\
         var<private> q8_new: array<vec4<f32>, {slots}>;\n"
    ));
    out.push_str(include_str!("../../shaders/q8_states.wgsl"));
    // The slot switches: slot 0 on the signed map (0), the others on the unsigned (256).
    let map = |k: usize| if k == 0 { 0 } else { 256 };
    let case = |k: usize, text: String| slot_case(k, k + 1 == slots, &text);
    out.push_str("\nfn load_state(slot: u32, i: u32) -> vec4<f32> {\n    switch slot {\n");
    for k in 0..slots {
        out.push_str(&case(
            k,
            format!(
                "            if q8_wide() {{\n                \
                 let w = q8_wide_at;\n                \
                 return bitcast<vec4<f32>>(vec4<u32>(state{k}[w], state{k}[w + 1u], \
                 state{k}[w + 2u], state{k}[w + 3u]));\n            }}\n            \
                 return q8_dequantize(state{k}[i], bitcast<f32>(state{k}[q8_absmax_at]), {}u);\n",
                map(k)
            ),
        ));
    }
    out.push_str(
        "    }\n}\n\n\
         fn store_state(slot: u32, i: u32, x: vec4<f32>) {\n    q8_new[slot] = x;\n}\n\n\
         fn q8_reduce(sub: u32, lanes: vec4<bool>) {\n    \
         if q8_wide() {\n        return;\n    }\n    \
         for (var k = 0u; k < Q8_SLOTS; k++) {\n        \
         atomicMax(&q8_max[k * Q8_ROWS + sub], q8_lanes_absmax(q8_new[k], lanes));\n    }\n}\n\n\
         fn q8_store(i: u32, sub: u32, lane: u32) {\n",
    );
    for k in 0..slots {
        out.push_str(&format!(
            "    {{\n        let x = q8_new[{k}];\n        \
             if q8_wide() {{\n            let w = q8_wide_at;\n            \
             let b = bitcast<vec4<u32>>(x);\n            \
             state{k}[w] = b.x;\n            state{k}[w + 1u] = b.y;\n            \
             state{k}[w + 2u] = b.z;\n            state{k}[w + 3u] = b.w;\n        \
             }} else {{\n            \
             let a = bitcast<f32>(atomicLoad(&q8_max[{k}u * Q8_ROWS + sub]));\n            \
             state{k}[i] = q8_quantize(x, a, {map}u);\n            \
             if lane == 0u {{\n                \
             state{k}[q8_absmax_at] = bitcast<u32>(q8_kept_absmax(a));\n            }}\n        }}\n    }}\n",
            map = map(k)
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::nearest_code;

    /// The table holds each map and its bounds where the shader reads them.
    #[test]
    fn maps_table_is_maps_then_bounds() {
        let t = maps_table();
        assert_eq!(t.len(), 1024 + 4 * TABLE_BUCKETS as usize);
        assert_eq!(t[127], 0.0);
        assert_eq!(t[255], 1.0);
        assert_eq!(t[256], 0.0);
        assert_eq!(t[512], (t[0] + t[1]) / 2.0);
        assert_eq!(t[768], (t[256] + t[257]) / 2.0);
        assert_eq!(t[767], f32::INFINITY);
    }

    /// The shader's table search gives the binary search's code (the reference's) for
    /// every bound and its neighbours, the codes, ±1, ±0, tiny values, NaN and a sweep of
    /// values over every octave, in both maps.
    #[test]
    fn the_table_search_is_the_binary_search() {
        for signed in [true, false] {
            let map = dynamic_map(signed);
            let bounds = dynamic_bounds(&map);
            let starts = bucket_starts(&bounds);
            let zero = if signed { 127 } else { 0 };
            let mut values = vec![0.0f32, -0.0, 1.0, -1.0, 2.0, -2.0, 1e-30, -1e-30, f32::NAN];
            for &x in bounds[..255].iter().chain(&map) {
                for d in [-2i32, -1, 0, 1, 2] {
                    let v = f32::from_bits((x.to_bits() as i32 + d) as u32);
                    values.extend([v, -v]);
                }
            }
            let mut x = 1e-9f32;
            while x < 1.5 {
                values.extend([x, -x]);
                x *= 1.0007;
            }
            for s in values {
                assert_eq!(
                    table_code(s, &bounds, &starts, zero),
                    nearest_code(s, &bounds),
                    "{s:e}, signed {signed}"
                );
            }
        }
    }
}
