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
//!   row divides by it, `clamp(·, −1, 1)`, then the number of bounds below it by eight
//!   halvings, 0 straight to the code of 0) and the row's absmax.
//!
//! The maps table (binding 18) holds the signed map, the unsigned map, then their bounds
//! (`reference::dynamic_bounds`), 256 f32 each.

use crate::reference::{dynamic_bounds, dynamic_map};

/// The maps table bound at 18: signed map, unsigned map, signed bounds, unsigned bounds.
pub(crate) fn maps_table() -> Vec<f32> {
    let (signed, unsigned) = (dynamic_map(true), dynamic_map(false));
    let mut table = Vec::with_capacity(1024);
    table.extend(signed);
    table.extend(unsigned);
    table.extend(dynamic_bounds(&signed));
    table.extend(dynamic_bounds(&unsigned));
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
         var<private> q8_new: array<vec4<f32>, {slots}>;\n"
    ));
    out.push_str(include_str!("../../shaders/q8_states.wgsl"));
    // The slot switches: slot 0 on the signed map (0), the others on the unsigned (256).
    let map = |k: usize| if k == 0 { 0 } else { 256 };
    let case = |k: usize, text: String| {
        let label = if k + 1 == slots {
            "default".to_string()
        } else {
            format!("case {k}u")
        };
        format!("        {label}: {{\n{text}        }}\n")
    };
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

    /// The table holds each map and its bounds where the shader reads them.
    #[test]
    fn maps_table_is_maps_then_bounds() {
        let t = maps_table();
        assert_eq!(t.len(), 1024);
        assert_eq!(t[127], 0.0);
        assert_eq!(t[255], 1.0);
        assert_eq!(t[256], 0.0);
        assert_eq!(t[512], (t[0] + t[1]) / 2.0);
        assert_eq!(t[768], (t[256] + t[257]) / 2.0);
        assert_eq!(t[767], f32::INFINITY);
    }
}
