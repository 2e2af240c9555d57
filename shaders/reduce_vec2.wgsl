// A fixed two-level fold over the workgroup for pairs of sums (appended after the kernels that
// call it: the trust pass, adaptive clipping): every invocation gets the workgroup's total,
// the same bits every run. Called by every invocation of the workgroup (it has barriers).

var<workgroup> pair_sums: array<vec2<f32>, WORKGROUP_SIZE>;

fn tree_sum2(lid: u32, x: vec2<f32>) -> vec2<f32> {
    // Two serial levels of 16 (see reduce_to_first in reduce.wgsl), then the broadcast:
    // three barriers.
    pair_sums[lid] = x;
    workgroupBarrier();
    if lid % 16u == 0u {
        var v = pair_sums[lid];
        for (var k = 1u; k < 16u; k++) {
            v += pair_sums[lid + k];
        }
        pair_sums[lid] = v;
    }
    workgroupBarrier();
    if lid == 0u {
        var v = pair_sums[0];
        for (var k = 16u; k < WORKGROUP_SIZE; k += 16u) {
            v += pair_sums[k];
        }
        pair_sums[0] = v;
    }
    workgroupBarrier();
    return pair_sums[0];
}
