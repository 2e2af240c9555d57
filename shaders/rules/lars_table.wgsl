// LARS's group table (optax.lars; see lars.wgsl), shared by its trust, fold and apply
// kernels.
//
// @binding(6) groups: one Lars per parameter group

// (trust coefficient, eps, 1 when the group's updates are scaled by a trust ratio).
fn trust_params(group: u32) -> vec3<f32> {
    let u = groups[group];
    return vec3<f32>(u.trust_coefficient, u.eps, f32(u.trust));
}
