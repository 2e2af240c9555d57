// The workgroup reduction of the norm kernels (appended after a kernel that calls
// `tree_reduce`): a fixed binary tree, so the same inputs give the same bits every run.
// NORM_KIND, a pipeline constant, picks the fold: one pipeline per norm kind.

override NORM_KIND: u32;

var<workgroup> sums: array<f32, WORKGROUP_SIZE>;
var<workgroup> flags: array<u32, WORKGROUP_SIZE>;

// + for sums, max for L∞.
fn combine(x: f32, y: f32) -> f32 {
    return select(x + y, max(x, y), NORM_KIND == NORM_INF);
}

// Folds the values of each aligned run of `width` invocations (a power of two, the same
// for the whole workgroup) and returns the run's result to all of them. Every invocation
// of the workgroup must call it: it has barriers.
fn tree_reduce(lid: u32, part: Partial, width: u32) -> Partial {
    sums[lid] = part.value;
    flags[lid] = part.flags;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if lid % width < s {
            sums[lid] = combine(sums[lid], sums[lid + s]);
            flags[lid] |= flags[lid + s];
        }
        workgroupBarrier();
    }
    let first = lid - lid % width;
    return Partial(sums[first], flags[first]);
}
