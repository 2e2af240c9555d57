// LARS, trust pass: per chunk, Σp² and Σu² of the direction u = g + wd·p (Optax's
// add_decayed_weights; g the clipped, unscaled gradient), for the per-tensor trust ratio.
// Reads the parameters and gradients through the access part (load_param, rule_grad) at
// `at`, so it runs on every slab the update runs on: own or pooled, f32 or 16-bit.
// (lars_table.wgsl, update.wgsl, trust_partials.wgsl)

fn trust_terms(i: u32, at: At, live: vec4<bool>) -> vec2<f32> {
    let block = block_of(i);
    let p = select(vec4<f32>(0.0), load_param(at.p), live);
    let u = select(vec4<f32>(0.0), rule_grad(at.g, block) + exact(groups[group_of(block)].weight_decay * p), live);
    return vec2<f32>(dot(p, p), dot(u, u));
}
