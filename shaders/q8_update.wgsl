// Entry of an update kernel whose states are 8-bit (src/storage/quantized.rs; appended in
// place of elementwise.wgsl, after the generated state part, which declares the row table
// q8_rows at binding 17, q8_load / store_state, q8_reduce and q8_store). A workgroup takes
// Q8_ROWS rows (quantization blocks of up to 256 elements of one tensor), Q8_LANES
// invocations each, one vec4 per invocation:
//   1. the rule's update (apply): states read dequantized, m ← map[code]·absmax, the new
//      states kept in private memory, the parameters written;
//   2. each row's new absmax per state, max |x| over its elements (u32 atomicMax of the
//      bits, which order like the magnitudes: NaN above +∞; order-free, so deterministic),
//      from 0 (WGSL zero-initializes workgroup memory);
//   3. after the barrier, each vec4's four codes and, by lane 0, the row's absmax written.
// Every invocation reaches the barrier; a skipped step writes nothing. q8_max starts at 0:
// WGSL zero-initializes workgroup memory.

var<workgroup> q8_max: array<atomic<u32>, Q8_MAX_SLOTS>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let sub = lid / Q8_LANES;
    let lane = lid % Q8_LANES;
    let r = group_index(wid, nwg) * Q8_ROWS + sub;
    var lanes = vec4<bool>(false);
    var i = 0u;
    if enabled() && r < q8_rows[0].z {
        q8_enter(r, lane);
        if lane * 4u < q8_row.y {
            i = q8_row.x + lane;
            let at = locate(i);
            let in_row = vec4<u32>(lane * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(q8_row.y);
            lanes = in_row & at.live;
            if any(lanes) {
                apply(i, at);
                q8_reduce(sub, lanes);
            }
        }
    }
    workgroupBarrier();
    if any(lanes) {
        q8_store(i, sub, lane);
    }
}
