// Bindings, skip rule and parameter groups of every update kernel (appended after the
// rule's body, which declares its states at bindings 2-4 and its group table `groups` at 6;
// see src/kernels/update.rs).
//
// Tensors start on 64-element blocks (BLOCK_VEC4S vec4s), so every block of a slab belongs
// to one tensor and one parameter group: blocks[b] = group | BLOCK_UNCLIPPED when the
// group is not clipped. A vec4 finds its hyperparameters as groups[group_of(i)].

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> state: StepState;
@group(0) @binding(7) var<uniform> slab: Slab;
@group(0) @binding(8) var<storage, read> blocks: array<u32>;

// A skipped step state leaves parameters and states as they were.
fn enabled() -> bool {
    return state.skipped == 0u;
}

// The parameter group of vec4 i.
fn group_of(i: u32) -> u32 {
    return blocks[i / BLOCK_VEC4S] & BLOCK_GROUP_MASK;
}

// The gradient vec4 i's rule applies: unscaled, norm- and value-clipped
// (effective_grad), or only unscaled when its group is not clipped.
fn rule_grad(i: u32) -> vec4<f32> {
    if (blocks[i / BLOCK_VEC4S] & BLOCK_UNCLIPPED) != 0u {
        return grads[i] * state.inv_grad_scale;
    }
    return effective_grad(grads[i], state);
}
