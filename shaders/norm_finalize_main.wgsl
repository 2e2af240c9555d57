// The finalize as its own dispatch of one workgroup (norm_finalize.wgsl).

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    finalize(lid);
}
