// Adafactor's update direction, shared by its trust pass and its update (prepended to
// both): u = g·(1 / sqrt(max(v̂, eps1²))), PyTorch's var_estimate.clamp_(min=eps1²).rsqrt_()
// then .mul_(grad), with v̂ the second-moment estimate of the states part
// (factored_estimate.wgsl) as the trust pass left it.

fn adafactor_direction(i: u32, g: vec4<f32>, ft: FactorTensor, u: Adafactor) -> vec4<f32> {
    return direction_from(second_moment(i, ft), g, u);
}

// The direction from the estimate v̂ (the trust pass has a vector's fresh variance at hand).
fn direction_from(vhat: vec4<f32>, g: vec4<f32>, u: Adafactor) -> vec4<f32> {
    let v = max(vhat, vec4<f32>(u.eps1_sq));
    return exact(div_rn(vec4<f32>(1.0), sqrt_rn(v)) * g);
}

