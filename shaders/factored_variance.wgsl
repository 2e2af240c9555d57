
// A vector's or scalar's second moment, one value per element, kept as a sparse state:
// this slab's buffer holds the blocks of its vectors only, block b at
// sparse_blocks[b]·BLOCK_VEC4S (src/storage/factored.rs variance_blocks).
@group(0) @binding(4) var<storage, read_write> variance: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read> sparse_blocks: array<u32>;

// Where vec4 i of this slab (of a vector) lies in `variance`.
fn variance_at(i: u32) -> u32 {
    return sparse_blocks[i / BLOCK_VEC4S] * BLOCK_VEC4S + i % BLOCK_VEC4S;
}
