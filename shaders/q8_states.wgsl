// The fixed half of the 8-bit state part (src/kernels/q8.rs generates the rest: the slot
// bindings, q8_rows at 17, q8_maps at 18, Q8_SLOTS, q8_new, and the slot switches).
// q8_maps: signed map [0, 256), unsigned map [256, 512), their bounds at +512, then the
// search's bucket tables.

const Q8_LANES: u32 = 64u;
const Q8_ROWS: u32 = WORKGROUP_SIZE / Q8_LANES;
const Q8_MAX_SLOTS: u32 = 3u * Q8_ROWS;
const Q8_WIDE: u32 = 1u;
const Q8_BLOCK: u32 = 256u;
// 1e-38 (a subnormal f32): the least absmax a partial row scales by (bitsandbytes' clamp).
const Q8_ABSMAX_FLOOR: u32 = 0x006ce3eeu;
// The search's bucket tables (src/kernels/q8.rs maps_table) start at word Q8_TABLES: the
// signed map's, then the unsigned map's, Q8_TABLE_BUCKETS per sign (generated).

// The invocation's row (first vec4, elements, flags, wide vec4), its absmax word and, on a
// wide row, its vec4's first f32 word.
var<private> q8_row: vec4<u32>;
var<private> q8_absmax_at: u32;
var<private> q8_wide_at: u32;

fn q8_enter(r: u32, lane: u32) {
    let head = q8_rows[0];
    q8_row = q8_rows[1u + r];
    q8_absmax_at = head.x + r;
    q8_wide_at = head.y + 4u * (q8_row.w + lane);
}

// Whether the row's tensor keeps f32 states (below the rule's 8-bit size).
fn q8_wide() -> bool {
    return (q8_row.z & Q8_WIDE) != 0u;
}

// Four codes (lane j in byte j) of the map at `map`, times the absmax a.
fn q8_dequantize(word: u32, a: f32, map: u32) -> vec4<f32> {
    let c = vec4<u32>(word & 255u, (word >> 8u) & 255u, (word >> 16u) & 255u, word >> 24u);
    let m = vec4<f32>(q8_maps[map + c.x], q8_maps[map + c.y], q8_maps[map + c.z], q8_maps[map + c.w]);
    return exact(m * a);
}

// max |x| over the lanes, as bits (which order like the magnitudes; NaN above +∞).
fn q8_lanes_absmax(x: vec4<f32>, lanes: vec4<bool>) -> u32 {
    let b = select(vec4<u32>(0u), bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu), lanes);
    return max(max(b.x, b.y), max(b.z, b.w));
}

// The absmax a row scales by: max(a, 1e-38), NaN kept.
fn q8_floored(a: f32) -> f32 {
    return select(max(a, bitcast<f32>(Q8_ABSMAX_FLOOR)), a, is_nan(a));
}

// The absmax a row keeps: a whole row its own, a partial row the floored one.
fn q8_kept_absmax(a: f32) -> f32 {
    return select(q8_floored(a), a, q8_row.y == Q8_BLOCK);
}

// The codes of scaled values s: the number of the map's bounds below clamp(s, −1, 1), the
// twin of src/kernels/q8.rs table_code (held there to the reference's binary search): the
// least code of s's bucket (its sign, octave from 2^-24 and top Q8_TABLE_BITS mantissa bits; below
// 2^-24 the code of 0), then up by one while the next bound is below it, Q8_SCAN times;
// NaN takes code 0. One table read and two bound reads per lane, where a binary search
// takes eight (lavapipe: 1,050 of a step's 1,850 ms at 16M).
fn q8_search(s: vec4<f32>, map: u32, zero: u32) -> vec4<u32> {
    let c = clamp(s, vec4<f32>(-1.0), vec4<f32>(1.0));
    let bits = bitcast<vec4<u32>>(c);
    let mag = bits & vec4<u32>(0x7fffffffu);
    let exponent = mag >> vec4<u32>(23u);
    let in_table = (exponent >= vec4<u32>(Q8_TABLE_MIN_EXPONENT)) & (exponent <= vec4<u32>(127u));
    let bucket = (bits >> vec4<u32>(31u)) * Q8_TABLE_BUCKETS
        + ((exponent - vec4<u32>(Q8_TABLE_MIN_EXPONENT)) << vec4<u32>(Q8_TABLE_BITS))
        + ((mag >> vec4<u32>(23u - Q8_TABLE_BITS)) & vec4<u32>((1u << Q8_TABLE_BITS) - 1u));
    let at = select(vec4<u32>(0u), bucket, in_table) + vec4<u32>(Q8_TABLES + map / 256u * 2u * Q8_TABLE_BUCKETS);
    let start = vec4<u32>(vec4<f32>(q8_maps[at.x], q8_maps[at.y], q8_maps[at.z], q8_maps[at.w]));
    var code = select(vec4<u32>(zero), start, in_table);
    let bounds = vec4<u32>(map + 512u);
    for (var k = 0u; k < Q8_SCAN; k++) {
        let b = bounds + code;
        let next = vec4<f32>(q8_maps[b.x], q8_maps[b.y], q8_maps[b.z], q8_maps[b.w]);
        code += select(vec4<u32>(0u), vec4<u32>(1u), next < c);
    }
    return select(code, vec4<u32>(0u), is_nan4(s));
}

// The four codes of x under absmax a with the map at `map`, lane j in byte j (the twin of
// reference::quantize_block): a whole row multiplies by 1 / max(a, 1e-38), a partial row
// divides by it; 0 goes to the code of 0.
fn q8_quantize(x: vec4<f32>, a: f32, map: u32) -> u32 {
    let floored = q8_floored(a);
    let whole = exact(x * div_rn1(1.0, floored));
    let s = select(div_rn(x, vec4<f32>(floored)), whole, q8_row.y == Q8_BLOCK);
    let zero = select(0u, 127u, map == 0u);
    let c = select(q8_search(s, map, zero), vec4<u32>(zero), x == vec4<f32>(0.0));
    return c.x | (c.y << 8u) | (c.z << 16u) | (c.w << 24u);
}
