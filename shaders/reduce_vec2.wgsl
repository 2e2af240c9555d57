// A fixed binary tree over the workgroup for pairs of sums (appended after the kernels that
// call it: the trust pass, adaptive clipping): every invocation gets the workgroup's total,
// the same bits every run. Called by every invocation of the workgroup (it has barriers).

var<workgroup> pair_sums: array<vec2<f32>, WORKGROUP_SIZE>;

fn tree_sum2(lid: u32, x: vec2<f32>) -> vec2<f32> {
    pair_sums[lid] = x;
    for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if lid < half {
            pair_sums[lid] += pair_sums[lid + half];
        }
    }
    workgroupBarrier();
    return pair_sums[0];
}
