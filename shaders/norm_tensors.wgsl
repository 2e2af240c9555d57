// Per-tensor fold: tensor_sums[t] = fold_{c ∈ chunks(t)} partials[c]   (+, or max for L∞; flags OR-ed)
// A tensor's chunks are a contiguous range. Workgroup w < op.num_big_tensors folds big
// tensor big_tensors[w] with all its invocations; the following workgroups give every
// other tensor (at most SERIAL_FOLD_CHUNKS chunks) one invocation that folds it in order.
// One dispatch for all tensors; fixed order and tree keep it deterministic.
//
// @binding(0) partials    one Partial per chunk
// @binding(1) ranges      per tensor: (first chunk, chunk count)
// @binding(2) tensor_sums one Partial per tensor (written)
// @binding(3) op          NormOp (num_tensors, num_big_tensors); the norm kind is NORM_KIND
// @binding(4) big_tensors the tensors with more than SERIAL_FOLD_CHUNKS chunks

@group(0) @binding(0) var<storage, read> partials: array<Partial>;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> tensor_sums: array<Partial>;
@group(0) @binding(3) var<uniform> op: NormOp;
@group(0) @binding(4) var<storage, read> big_tensors: array<u32>;

// Folds partials first, first + stride, ... below first + count.
fn fold(first: u32, count: u32, start: u32, stride: u32) -> Partial {
    var acc = Partial(0.0, 0u);
    for (var i = start; i < count; i += stride) {
        let part = partials[first + i];
        acc = Partial(combine(acc.value, part.value), acc.flags | part.flags);
    }
    return acc;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = group_index(wid, nwg);
    if w >= op.num_big_tensors {
        let t = (w - op.num_big_tensors) * WORKGROUP_SIZE + lid;
        if t < op.num_tensors && ranges[t].y <= SERIAL_FOLD_CHUNKS {
            tensor_sums[t] = fold(ranges[t].x, ranges[t].y, 0u, 1u);
        }
        return;
    }
    let t = big_tensors[w];
    let total = tree_reduce(lid, fold(ranges[t].x, ranges[t].y, lid, WORKGROUP_SIZE), WORKGROUP_SIZE);
    if lid == 0u {
        tensor_sums[t] = total;
    }
}
