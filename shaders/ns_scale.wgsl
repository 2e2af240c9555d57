// Newton–Schulz's first step: one workgroup per matrix of the table divides it by its
// Frobenius norm, in place:
//   x ← round(x);  norm = round(sqrt(Σ x²));  x ← round(x / max(norm, round(eps)))
// round: to bf16 (NsMatrix::round_bf16) or none. Invocation l sums elements l, l + 256,
// … in order, then a fixed tree adds the 256 sums: the same bits on every run. The twin
// of reference::normalize_frobenius (which sums in f64).
//
// @binding(0) work (read-write)  @binding(1) matrices

@group(0) @binding(0) var<storage, read_write> work: array<f32>;
@group(0) @binding(1) var<storage, read> matrices: array<NsMatrix>;

var<workgroup> sums: array<f32, 256>;

fn round_to(x: f32, bf16: bool) -> f32 {
    return select(x, bf16_round(x), bf16);
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let w = group_index(wid, nwg);
    if w >= arrayLength(&matrices) {
        return;
    }
    let mat = matrices[w];
    let bf16 = mat.round_bf16 != 0u;
    // 16 elements per turn of the outer loop (the inner one unrolls): Mesa's software
    // drivers stop an invocation's loops after 65,535 turns in all, 8.4M elements here at
    // one per turn. The order is l, l + 256, … all the same.
    var s = 0.0;
    for (var e0 = li; e0 < mat.len; e0 += 4096u) {
        for (var u = 0u; u < 16u; u++) {
            let e = e0 + 256u * u;
            if e < mat.len {
                let x = round_to(work[mat.first + e], bf16);
                s += x * x;
            }
        }
    }
    sums[li] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half /= 2u) {
        if li < half {
            sums[li] += sums[li + half];
        }
        workgroupBarrier();
    }
    let norm = max(round_to(sqrt(sums[0]), bf16), round_to(mat.eps, bf16));
    for (var e0 = li; e0 < mat.len; e0 += 4096u) {
        for (var u = 0u; u < 16u; u++) {
            let e = e0 + 256u * u;
            if e < mat.len {
                let x = round_to(work[mat.first + e], bf16);
                work[mat.first + e] = round_to(x / norm, bf16);
            }
        }
    }
}
