// The workgroup reductions of the norm kernels (appended after a kernel that calls
// `tree_reduce` or `reduce_to_first`): fixed orders, so the same inputs give the same bits
// every run.
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

// reduce_to_first_shared's workgroup storage: each invocation's (value bits, flags) pair,
// one load for both.
var<workgroup> pairs: array<vec2<u32>, WORKGROUP_SIZE>;

// Folds the values of each aligned run of `width` invocations (a power of two, the same
// for the whole workgroup: masks and shifts, never a division by it, which lavapipe would
// run as 8 scalar divides per SIMD batch) into the run's first lane; the others get a
// value of no use.
// Every invocation of the workgroup must call it: it has barriers. Two serial levels of
// FAN_IN instead of a binary tree: two barriers instead of 1 + log2(width), in a fixed
// order: lane order within each run of FAN_IN, then the runs in order. The first level is
// done by the run's first width / FAN_IN lanes (not every FAN_IN-th lane): on lavapipe
// each load is a loop over a SIMD batch of 8 lanes and every loop iteration is paid by
// the whole batch, so packing the folding lanes into 2 batches instead of spreading them
// over 16, and reading value and flags in one load, took the 16M-element norm from 13.1
// to 10.3 ms; on a GPU the folding lanes are one warp instead of sixteen. The device's
// reduce_to_first (reduce_first_*.wgsl) calls this where it has no subgroups.
fn reduce_to_first_shared(lid: u32, part: Partial, width: u32) -> Partial {
    pairs[lid] = vec2<u32>(bitcast<u32>(part.value), part.flags);
    workgroupBarrier();
    let lane = lid & (width - 1u);
    let fan = min(FAN_IN, width);
    if lane < (width >> countTrailingZeros(fan)) {
        let at = lid - lane + lane * fan;
        let first = pairs[at];
        var v = bitcast<f32>(first.x);
        var f = first.y;
        for (var k = 1u; k < fan; k++) {
            let q = pairs[at + k];
            v = combine(v, bitcast<f32>(q.x));
            f |= q.y;
        }
        pairs[at] = vec2<u32>(bitcast<u32>(v), f);
    }
    workgroupBarrier();
    let own = pairs[lid];
    var v = bitcast<f32>(own.x);
    var f = own.y;
    if lane == 0u {
        for (var k = fan; k < width; k += fan) {
            let q = pairs[lid + k];
            v = combine(v, bitcast<f32>(q.x));
            f |= q.y;
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
        if (lid & (width - 1u)) < s {
            sums[lid] = combine(sums[lid], sums[lid + s]);
            flags[lid] |= flags[lid + s];
        }
        workgroupBarrier();
    }
    let first = lid - (lid & (width - 1u));
    return Partial(sums[first], flags[first]);
}
