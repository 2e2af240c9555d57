// LAMB's group table (optax.lamb; see lamb.wgsl), shared by its trust, fold and apply
// kernels.
//
// @binding(6) groups: one Lamb per parameter group

// Optax's lamb scales every update by its trust ratio, with coefficient 1 and eps 0.
fn trust_params(group: u32) -> vec3<f32> {
    return vec3<f32>(1.0, 0.0, 1.0);
}
