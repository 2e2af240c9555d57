// Adafactor's row means, after factor_fold.wgsl: invocation b averages matrix b's row
// values in order and floors the mean as PyTorch's row_var.mean(dim=-2).clamp_(min=eps1):
//   means[batch.mean] = max((Σ_r row_var[row_first + r]) / rows, eps1)
// Skipped with the step. The twin of the mean in reference::adafactor.
//
// @binding(2) row_var (the states part)  @binding(5) state  @binding(20) factor_tensors
// @binding(22) factor_means (written; declared by the states part)  @binding(25) factor_batches

@group(0) @binding(5) var<uniform> state: StepState;
@group(0) @binding(25) var<storage, read> factor_batches: array<FactorBatch>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = group_index(wid, nwg) * 64u + lid;
    if b >= arrayLength(&factor_batches) || state.skipped != 0u {
        return;
    }
    let batch = factor_batches[b];
    var s = 0.0;
    for (var r = 0u; r < batch.rows; r++) {
        s += row_var[batch.row_first + r];
    }
    let eps1 = groups[factor_tensors[batch.tensor].group].eps1;
    factor_means[batch.mean] = max(s / f32(batch.rows), eps1);
}
