// Entry point of every elementwise kernel (appended after the kernel's `enabled` and
// `apply`, which declares `slab`, and after locate_direct.wgsl or locate_pooled.wgsl). Workgroup w covers VEC4_PER_INVOCATION ×
// WORKGROUP_SIZE consecutive vec4s of the slab's virtual space; invocation lid takes every
// WORKGROUP_SIZE-th of them, so each load instruction is coalesced and the per-invocation
// setup (uniforms, the skip flag) is paid once per VEC4_PER_INVOCATION vec4s. Invocations
// past the slab's end return: the grid is rounded up.

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if !enabled() {
        return;
    }
    let base = group_index(wid, nwg) * (WORKGROUP_SIZE * VEC4_PER_INVOCATION) + lid;
    for (var j = 0u; j < VEC4_PER_INVOCATION; j++) {
        let i = base + j * WORKGROUP_SIZE;
        if i * 4u >= slab.len {
            return;
        }
        let at = locate(i);
        // In a pool, a vec4 of padding between two tensors is nobody's: left alone.
        if !POOLED || any(at.live) {
            apply(i, at);
        }
    }
}
