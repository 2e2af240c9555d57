// The fixed half of the 8-bit state part (src/kernels/q8.rs generates the rest: the slot
// bindings, q8_rows at 17, q8_maps at 18, Q8_SLOTS, q8_new, and the slot switches).
// q8_maps: signed map [0, 256), unsigned map [256, 512), their bounds at +512.

const Q8_LANES: u32 = 64u;
const Q8_ROWS: u32 = WORKGROUP_SIZE / Q8_LANES;
const Q8_MAX_SLOTS: u32 = 3u * Q8_ROWS;
const Q8_WIDE: u32 = 1u;
const Q8_BLOCK: u32 = 256u;
// 1e-38 (a subnormal f32): the least absmax a partial row scales by (bitsandbytes' clamp).
const Q8_ABSMAX_FLOOR: u32 = 0x006ce3eeu;

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

// The code of scaled value s: clamp(s, −1, 1) (NaN kept), then the number of the map's
// bounds (at `bounds`) below it, by eight halvings.
fn q8_search(s: f32, bounds: u32) -> u32 {
    let c = select(clamp(s, -1.0, 1.0), s, is_nan(s));
    var lo = 0u;
    for (var half = 128u; half > 0u; half = half >> 1u) {
        if q8_maps[bounds + lo + half - 1u] < c {
            lo += half;
        }
    }
    return lo;
}

// The four codes of x under absmax a with the map at `map` (the twin of
// reference::quantize_block): a whole row multiplies by 1 / max(a, 1e-38), a partial
// row divides by it; 0 goes to the code of 0.
fn q8_quantize(x: vec4<f32>, a: f32, map: u32) -> u32 {
    let whole = q8_row.y == Q8_BLOCK;
    let floored = q8_floored(a);
    let inv = div_rn1(1.0, floored);
    let zero = select(0u, 127u, map == 0u);
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
        let s = select(div_rn1(x[j], floored), exact1(x[j] * inv), whole);
        let c = select(q8_search(s, map + 512u), zero, x[j] == 0.0);
        word |= c << (8u * j);
    }
    return word;
}
