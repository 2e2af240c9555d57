// Bindings and skip rule of every update kernel (appended after the rule's body, which
// declares its states at bindings 2-4 and its uniform `u` at 6; see src/kernels/update.rs).

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> state: StepState;
@group(0) @binding(7) var<uniform> slab: Slab;

// A skipped step state leaves parameters and states as they were.
fn enabled() -> bool {
    return state.skipped == 0u;
}
