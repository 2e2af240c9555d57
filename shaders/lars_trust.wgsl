// LARS, trust pass: per chunk, Σp² and Σu² of the direction u = g + wd·p (Optax's
// add_decayed_weights; g the clipped, unscaled gradient), for the per-tensor trust ratio.
// (lars_rule.wgsl, update.wgsl, trust_partials.wgsl)

fn trust_terms(i: u32, live: vec4<bool>) -> vec2<f32> {
    let block = block_of(i);
    let p = select(vec4<f32>(0.0), params[i], live);
    let u = select(vec4<f32>(0.0), rule_grad(i, block) + exact(groups[group_of(block)].weight_decay * p), live);
    return vec2<f32>(dot(p, p), dot(u, u));
}
