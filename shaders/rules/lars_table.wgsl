// LARS's group table (optax.lars; see lars.wgsl), shared by its trust, fold and apply
// kernels.
//
// @binding(6) groups: one Lars per parameter group

struct Lars {
    neg_lr: f32,
    weight_decay: f32,
    momentum: f32,
    nesterov: u32,
    trust_coefficient: f32,
    eps: f32,
    trust: u32,
    _pad: u32,
}

@group(0) @binding(6) var<uniform> groups: array<Lars, MAX_GROUPS>;

// (trust coefficient, eps, 1 when the group's updates are scaled by a trust ratio).
fn trust_params(group: u32) -> vec3<f32> {
    let u = groups[group];
    return vec3<f32>(u.trust_coefficient, u.eps, f32(u.trust));
}
