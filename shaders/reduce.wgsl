// The workgroup reduction of the norm kernels (appended after a kernel that calls
// `tree_reduce`): a fixed binary tree, so the same inputs give the same bits every run.
// NORM_KIND, a pipeline constant, picks the fold: one pipeline per norm kind.

override NORM_KIND: u32;

var<workgroup> sums: array<f32, WORKGROUP_SIZE>;
var<workgroup> flags: array<u32, WORKGROUP_SIZE>;

// Values each serial step of reduce_to_first folds.
const FAN_IN: u32 = 16u;

// + for sums, max for L∞.
fn combine(x: f32, y: f32) -> f32 {
    return select(x + y, max(x, y), NORM_KIND == NORM_INF);
}

// Folds the values of each aligned run of `width` invocations (a power of two, the same
// for the whole workgroup) into the run's first lane; the others get a value of no use.
// Every invocation of the workgroup must call it: it has barriers. Two serial levels of
// FAN_IN instead of a binary tree: two barriers instead of 1 + log2(width) (on lavapipe
// each barrier switches every SIMD batch of the workgroup, and at 256 invocations the tree
// cost more than the loads), in a fixed order: lane order within each run of FAN_IN, then
// the runs in order.
fn reduce_to_first(lid: u32, part: Partial, width: u32) -> Partial {
    sums[lid] = part.value;
    flags[lid] = part.flags;
    workgroupBarrier();
    let lane = lid % width;
    let fan = min(FAN_IN, width);
    if lane % fan == 0u {
        var v = sums[lid];
        var f = flags[lid];
        for (var k = 1u; k < fan; k++) {
            v = combine(v, sums[lid + k]);
            f |= flags[lid + k];
        }
        sums[lid] = v;
        flags[lid] = f;
    }
    workgroupBarrier();
    var v = sums[lid];
    var f = flags[lid];
    if lane == 0u {
        for (var k = fan; k < width; k += fan) {
            v = combine(v, sums[lid + k]);
            f |= flags[lid + k];
        }
    }
    return Partial(v, f);
}

// Folds each aligned run of `width` invocations by a fixed binary tree and returns the
// run's result to all of them (1 + log2(width) barriers: for the kernels that run one or
// a few workgroups, the per-tensor fold and the finalize, where barriers cost nothing that
// matters and the tree's pairwise order keeps the rounding error at log2(width) adds).
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
