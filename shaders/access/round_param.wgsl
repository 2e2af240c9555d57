// The 16-bit value a 16-bit slab's update writes for vec4 p of the slab: to nearest even,
// or stochastically with the step's random bits of each element's index in the set's
// virtual space (slab.base + 4p + lane), so the same seed and step give the same bits on
// every device and every run.

fn round_param(p: u32, x: vec4<f32>) -> vec2<u32> {
    if state.stochastic == 0u {
        return narrow4_nearest(x);
    }
    return narrow4_stochastic(x, rounding_bits4(state.round_seed, state.step, slab.base + p * 4u));
}
