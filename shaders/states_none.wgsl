// The state part of a kernel whose states are not one vec4 per vec4 of the slab
// (Adafactor's factored ones, read through factored_estimate.wgsl and their bindings) or
// that has none (factor_partials.wgsl): update.wgsl's shared Adam helpers name these two,
// so they exist, and read and write nothing.

fn load_state(slot: u32, i: u32) -> vec4<f32> {
    return vec4<f32>(0.0);
}

fn store_state(slot: u32, i: u32, x: vec4<f32>) {}
