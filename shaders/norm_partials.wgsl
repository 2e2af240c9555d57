// Norm partials: workgroup c reduces chunk c of one slab.
//   partials[slab.chunk_base + c] = { Σ_{i∈c} |g_i|^p   (max_{i∈c} |g_i| for L∞),  NaN/Inf flags }
// Chunks never cross a tensor, so the per-tensor fold can reuse these partials.
// Fixed chunk→workgroup map, fixed per-invocation order, fixed tree: identical bits every run.
//
// @binding(0) grads    this slab's gradients, vec4-packed
// @binding(1) chunks   this slab's chunk table
// @binding(2) partials one Partial per chunk of the whole set (written)
// @binding(3) op       OpParams (kind, p)
// @binding(4) slab     Slab (len, chunk_base, num_chunks)

struct Chunk {
    tensor: u32,
    start: u32,
    len: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> chunks: array<Chunk>;
@group(0) @binding(2) var<storage, read_write> partials: array<Partial>;
@group(0) @binding(3) var<uniform> op: OpParams;
@group(0) @binding(4) var<uniform> slab: Slab;

var<workgroup> sums: array<f32, WORKGROUP_SIZE>;
var<workgroup> flags: array<u32, WORKGROUP_SIZE>;

fn term(a: vec4<f32>) -> vec4<f32> {
    switch op.kind {
        case NORM_L2: { return a * a; }
        case NORM_P: { return select(pow(a, vec4<f32>(op.p)), vec4<f32>(0.0), a == vec4<f32>(0.0)); }
        default: { return a; }
    }
}

fn combine(x: f32, y: f32) -> f32 {
    return select(x + y, max(x, y), op.kind == NORM_INF);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = group_index(wid, nwg);
    // The grid is rounded up to a 2D shape: surplus workgroups leave together.
    if c >= slab.num_chunks {
        return;
    }
    let chunk = chunks[c];
    let end = chunk.start + chunk.len;
    var acc = 0.0;
    var bad = 0u;
    for (var k = 0u; k < LOADS_PER_INVOCATION; k++) {
        let e = chunk.start + (k * WORKGROUP_SIZE + lid) * 4u;
        if e < end {
            // Lanes past the chunk belong to padding or the next tensor.
            let a = select(vec4<f32>(0.0), abs(grads[e / 4u]), lanes_before(e, end));
            bad |= nonfinite_flags(a);
            let t = term(a);
            acc = combine(acc, combine(combine(t.x, t.y), combine(t.z, t.w)));
        }
    }
    sums[lid] = acc;
    flags[lid] = bad;
    workgroupBarrier();
    for (var s = WORKGROUP_SIZE / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            sums[lid] = combine(sums[lid], sums[lid + s]);
            flags[lid] |= flags[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        partials[slab.chunk_base + c] = Partial(sums[0], flags[0]);
    }
}
