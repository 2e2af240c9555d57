// The trust pass's entry point (appended after a rule's trust body, which defines
// trust_terms(i, at, live) -> (Σp², Σu²) of vec4 i, found at `at` by the addressing part):
// workgroup w reduces chunk row w of the slab's chunk table (in the slab's virtual space,
// also for a pool), its invocations striding over the chunk's vec4s, then a fixed tree
// (reduce_vec2.wgsl);
// trust_partials[chunk.partial] = (Σp², Σu²). Skipped (no state written) when the step is.
//
// @binding(13) chunks          this slab's chunk table
// @binding(14) trust_partials  one vec2 per chunk of the set (written)

@group(0) @binding(13) var<storage, read> chunks: array<Chunk>;
@group(0) @binding(14) var<storage, read_write> trust_partials: array<vec2<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    // Uniform per workgroup: every invocation returns, or none does.
    if row >= slab.num_chunks || state.skipped != 0u {
        return;
    }
    let chunk = chunks[row];
    let end = chunk.start + chunk.len;
    var acc = vec2<f32>(0.0);
    for (var e = chunk.start + lid * 4u; e < end; e += WORKGROUP_SIZE * 4u) {
        let at = locate(e / 4u);
        // A pool's block may end before the chunk does; a slab of clipstep's own needs no
        // second mask (POOLED is a constant: the branch compiles away).
        var live = lanes_before(e, end);
        if POOLED {
            live = live & at.live;
        }
        acc += trust_terms(e / 4u, at, live);
    }
    let total = tree_sum2(lid, acc);
    if lid == 0u {
        trust_partials[chunk.partial] = total;
    }
}
