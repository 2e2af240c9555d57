// The per-tensor fold and the finalize in one dispatch of one workgroup, for a set whose
// fold is at most FUSED_FOLD_GROUPS workgroups (a few thousand small tensors, or a few big
// ones): the workgroup takes the fold's workgroups in turn, then finalizes. The same
// arithmetic in the same order as the two dispatches (norm_tensors_main.wgsl, then
// norm_finalize_main.wgsl), so the same bits; one dispatch, and one barrier between
// dependent dispatches, fewer per step.
//   for w in 0..fold_workgroups(): fold_tensors(w)   (norm_tensors.wgsl)
//   storageBarrier                                    (the sums visible to every invocation)
//   finalize                                          (norm_finalize.wgsl)
// Bindings: norm_sums.wgsl's, the fold's and the finalize's (0–9).

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    if op.source == SOURCE_COMPUTED {
        let groups = fold_workgroups();
        for (var w = 0u; w < groups; w++) {
            fold_tensors(w, lid);
            // The next turn's tree_reduce reuses the workgroup arrays.
            workgroupBarrier();
        }
        storageBarrier();
    }
    finalize(lid);
}
