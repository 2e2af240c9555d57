// A pool's place table (appended before the pooled access parts): where each 64-element
// block of the slab's virtual space lives in the caller's params and grads windows, one
// 8-byte row per block, so that an update reads one word pair per vec4 (not four words):
//   row b = (P | (n & 15) << 28,  G | (n >> 4) << 28)
// P, G: the block's first vec4 in the params and in the grads window (below 2^28: a pool's
// windows are at most 4 GiB, PLACE_OFFSET_MASK); n: the block's live elements mod 64
// (0: all 64; else its tensor's partial last block, 1..=63 elements).
//
// @binding(10) places the place table (vec2<u32> rows)

@group(0) @binding(10) var<storage, read> places: array<vec2<u32>>;

// Block b's first params vec4, first grads vec4 and live elements.
struct BlockPlace {
    params: u32,
    grads: u32,
    live: u32,
}

fn place_of(b: u32) -> BlockPlace {
    let row = places[b];
    let n = (row.x >> 28u) | ((row.y >> 28u) << 4u);
    return BlockPlace(row.x & PLACE_OFFSET_MASK, row.y & PLACE_OFFSET_MASK, select(n, BLOCK_VEC4S * 4u, n == 0u));
}
