// Per-tensor fold: workgroup t folds the partials of tensor t's chunks, a contiguous range.
//   tensor_sums[t] = fold_{c ∈ chunks(t)} partials[c]       (+ for sums, max for L∞; flags OR-ed)
// One dispatch for all tensors; a fixed strided order and tree keep it deterministic.
//
// @binding(0) partials    one Partial per chunk
// @binding(1) ranges      per tensor: (first chunk, chunk count)
// @binding(2) tensor_sums one Partial per tensor (written)
// @binding(3) op          OpParams (kind, num_tensors)

@group(0) @binding(0) var<storage, read> partials: array<Partial>;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> tensor_sums: array<Partial>;
@group(0) @binding(3) var<uniform> op: OpParams;

var<workgroup> sums: array<f32, WORKGROUP_SIZE>;
var<workgroup> flags: array<u32, WORKGROUP_SIZE>;

fn combine(x: f32, y: f32) -> f32 {
    return select(x + y, max(x, y), op.kind == NORM_INF);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = group_index(wid, nwg);
    if t >= op.num_tensors {
        return;
    }
    let range = ranges[t];
    var acc = 0.0;
    var bad = 0u;
    for (var i = lid; i < range.y; i += WORKGROUP_SIZE) {
        let part = partials[range.x + i];
        acc = combine(acc, part.value);
        bad |= part.flags;
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
        tensor_sums[t] = Partial(sums[0], flags[0]);
    }
}
