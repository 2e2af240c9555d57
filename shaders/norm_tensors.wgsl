// Per-tensor fold: tensor_sums[t] = fold_{c ∈ chunks(t)} partials[c]   (+, or max for L∞; flags OR-ed)
// A tensor's chunks are a contiguous range. Workgroup w < op.num_big_tensors folds big
// tensor big_tensors[w] with all its invocations; the following workgroups give every
// other tensor (at most SERIAL_FOLD_CHUNKS chunks) one invocation that folds it in order.
// One dispatch for all tensors (norm_tensors_main.wgsl), or, for a set whose fold is a few
// workgroups, their turns in the finalize's one workgroup (norm_fold_finalize.wgsl); fixed
// order and tree keep it deterministic, the same bits either way.
//
// @binding(0) tensor_sums one Partial per tensor (written; norm_sums.wgsl)
// @binding(3) op          NormOp (num_tensors, num_big_tensors; norm_sums.wgsl); the norm kind is NORM_KIND
// @binding(7) partials    one Partial per chunk
// @binding(8) ranges      per tensor: (first chunk, chunk count)
// @binding(9) big_tensors the tensors with more than SERIAL_FOLD_CHUNKS chunks

@group(0) @binding(7) var<storage, read> partials: array<Partial>;
@group(0) @binding(8) var<storage, read> ranges: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read> big_tensors: array<u32>;

// Folds partials first, first + stride, ... below first + count.
fn fold(first: u32, count: u32, start: u32, stride: u32) -> Partial {
    var acc = Partial(0.0, 0u);
    for (var i = start; i < count; i += stride) {
        let part = partials[first + i];
        acc = Partial(combine(acc.value, part.value), acc.flags | part.flags);
    }
    return acc;
}

// The fold's workgroups: op.num_big_tensors, then one per WORKGROUP_SIZE tensors.
fn fold_workgroups() -> u32 {
    return op.num_big_tensors + (op.num_tensors + WORKGROUP_SIZE - 1u) / WORKGROUP_SIZE;
}

// What the fold's workgroup w does (w uniform across the workgroup: it has barriers).
fn fold_tensors(w: u32, lid: u32) {
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
