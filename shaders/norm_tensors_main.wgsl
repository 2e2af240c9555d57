// The per-tensor fold as its own dispatch: workgroup w does fold_tensors(w)
// (norm_tensors.wgsl).

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    fold_tensors(group_index(wid, nwg), lid);
}
