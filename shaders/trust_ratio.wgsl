// Optax's scale_by_trust_ratio, the trust fold's ratio for LARS and LAMB, with
// (tc, eps, trusted) from the rule's trust_params of the tensor's group:
//   ratio_t = (tc·‖p_t‖) / (‖u_t‖ + eps),   1 when ‖p_t‖ = 0 or ‖u_t‖ = 0, or untrusted group

fn tensor_ratio(t: u32, group: u32, sums: vec2<f32>) -> f32 {
    let trust = trust_params(group);
    let p_norm = sqrt(sums.x);
    let u_norm = sqrt(sums.y);
    if p_norm == 0.0 || u_norm == 0.0 || trust.z == 0.0 {
        return 1.0;
    }
    return trust.x * p_norm / (u_norm + trust.y);
}
