// Bindings, skip rule and parameter groups of every update kernel (appended after the
// rule's body, which declares its states at bindings 2-4 and its group table `groups` at 6;
// see src/kernels/update.rs). The params and gradients, and `load_param`, `store_param`,
// `load_grad`, come from update_split.wgsl (f32, each in its own binding),
// update_shared.wgsl (f32, a caller's buffer holding both), update_half_master.wgsl (16-bit
// gradients, f32 master weights and their 16-bit copy) or update_half_inplace.wgsl (16-bit
// gradients and parameters).
//
// Tensors start on 64-element blocks (BLOCK_VEC4S vec4s), so every block of a slab belongs
// to one tensor and one parameter group: blocks[b] = group | BLOCK_UNCLIPPED when the
// group is not clipped (| BLOCK_SLAB_UNIFORM on blocks[0] when every block is alike). A vec4 finds its hyperparameters as groups[group_of(block_of(i))].

@group(0) @binding(5) var<uniform> state: StepState;

// The step's shape (pipeline constants, src/kernels/shaders.rs PipelineKey): false compiles out a
// path no group and no option of this step takes. VALUE_CLIP: the clamp by value.
// AMSGRAD: Adam's max_exp_avg_sq. LERP_HIGH: torch_lerp's form for weights ≥ 0.5.
// MOMENTUM: SGD's and RMSprop's momentum buffers. NESTEROV: SGD's Nesterov momentum.
// CENTERED: RMSprop's gradient average. GROUP_GATHER: the slab holds a group other than 0,
// or several (false: all of group 0, whose rows are read at the constant index 0).
override VALUE_CLIP: bool = true;
override AMSGRAD: bool = true;
override LERP_HIGH: bool = true;
override MOMENTUM: bool = true;
override NESTEROV: bool = true;
override CENTERED: bool = true;
override GROUP_GATHER: bool = true;
// FACTOR_VECTORS, FACTOR_MATRICES, FACTOR_UNALIGNED: the slab holds vectors, matrices of a
// multiple of 4 columns, other matrices of a factored rule (Adafactor; false compiles the
// kind's path out: factored_estimate.wgsl).
override FACTOR_VECTORS: bool = true;
override FACTOR_MATRICES: bool = true;
override FACTOR_UNALIGNED: bool = true;
@group(0) @binding(7) var<uniform> slab: Slab;
@group(0) @binding(8) var<storage, read> blocks: array<u32>;

// A skipped step state leaves parameters and states as they were.
fn enabled() -> bool {
    return state.skipped == 0u;
}

// The block-table entry of vec4 i: its group, and whether the group is clipped. When the
// whole slab is one group (BLOCK_SLAB_UNIFORM on entry 0, set by the host), that entry
// serves every vec4: one scalar load instead of a gather per vec4.
fn block_of(i: u32) -> u32 {
    let head = blocks[0];
    if !GROUP_GATHER {
        return head;
    }
    if (head & BLOCK_SLAB_UNIFORM) != 0u {
        return head;
    }
    return blocks[i / BLOCK_VEC4S];
}

// The parameter group of a block-table entry.
fn group_of(block: u32) -> u32 {
    if !GROUP_GATHER {
        return 0u;
    }
    return block & BLOCK_GROUP_MASK;
}

// The gradient vec4 g (of block-table entry `block`) its rule applies: NaN read as 0 under
// the ZeroNans policy, then unscaled, norm- and value-clipped (effective_grad), or only
// unscaled when its group is not clipped.
// The clamp only runs under a value clip (a branch uniform over the step, compiled out of
// steps without one: VALUE_CLIP).
fn rule_grad(g: u32, block: u32) -> vec4<f32> {
    let clipped = (block & BLOCK_UNCLIPPED) == 0u;
    let raw = zero_nans_if(load_grad(g), state.zero_nans != 0u);
    let x = exact(exact(raw * state.inv_grad_scale) * select(1.0, state.clip_coef, clipped));
    if VALUE_CLIP && state.clip_value > 0.0 {
        return select(x, clamp_keep_nan(x, state.clip_value), clipped);
    }
    return x;
}

// The product x, rounded to f32 on its own before the sum or product it feeds. A driver
// may contract a·b + c into one fma and reorder a·b·c (NVIDIA's Vulkan compiler does both:
// SGD's momentum 7 ulp and RMSprop's square average off in a third of its elements on an
// H100; lavapipe does neither), which the f32 reference does not; xor-ing the bits with
// state.exact_zero (always 0, but read at run time) keeps the product's own rounding, so
// every device computes the reference formula to the bit. Every sum of products and every
// product of three factors in an update kernel goes through it. One integer op each, and
// none where fma does not round once (FUSED_FMA false, rounding.wgsl: lavapipe): there a
// contracted a·b + c is a multiply and an add, the reference's roundings, and the xor cost
// RMSprop 17% and AdamW 6% on lavapipe.
fn exact(x: vec4<f32>) -> vec4<f32> {
    if !FUSED_FMA {
        return x;
    }
    return bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) ^ vec4<u32>(state.exact_zero));
}

fn exact1(x: f32) -> f32 {
    return exact(vec4<f32>(x)).x;
}

// The gradient a rule applies to parameter p: −g if maximize, then g + wd·p (PyTorch's L2
// penalty; wd = 0: none). The twin of reference::signed_decayed.
fn signed_decayed(g: vec4<f32>, p: vec4<f32>, maximize: u32, weight_decay: f32) -> vec4<f32> {
    var x = select(g, -g, maximize != 0u);
    if weight_decay != 0.0 {
        x = x + exact(weight_decay * p);
    }
    return x;
}

// The gradient and parameter an Adam-family step (Adam, AdamW, NAdam, RAdam) continues
// with: g ← −g if maximize, then AdamW's decoupled decay p ← p·decay_factor, or Adam's L2
// penalty g ← g + wd·p (of the parameter before any decay). The twin of
// reference::adam_decay.
struct Decayed {
    g: vec4<f32>,
    p: vec4<f32>,
}

fn adam_decay(
    g: vec4<f32>, p0: vec4<f32>, maximize: u32, weight_decay: f32, decay_factor: f32,
    decoupled: bool,
) -> Decayed {
    var p = p0;
    if decoupled && weight_decay != 0.0 {
        p = exact(p * decay_factor);
    }
    return Decayed(signed_decayed(g, p0, maximize, select(weight_decay, 0.0, decoupled)), p);
}

// Adam's two moments after gradient g (Adam, AdamW, NAdam, RAdam), from state slots 0 and
// 1 of vec4 i, stored unless the step is skipped (`live`):
//   m ← lerp(m, g, 1 − β1);  v ← v·β2 + ((1 − β2)·g)·g
// each product rounded on its own. The twin of reference::adam_moments.
struct Moments {
    m: vec4<f32>,
    v: vec4<f32>,
}

fn adam_moments(
    i: u32, g: vec4<f32>, live: vec4<bool>, one_minus_beta1: f32, beta2: f32, one_minus_beta2: f32,
) -> Moments {
    let m0 = load_state(0u, i);
    let v0 = load_state(1u, i);
    let m = torch_lerp(m0, g, one_minus_beta1);
    let v = exact(v0 * beta2) + exact(exact(one_minus_beta2 * g) * g);
    store_state(0u, i, select(m0, m, live));
    store_state(1u, i, select(v0, v, live));
    return Moments(m, v);
}

// torch.lerp(start, end, w): start + w·(end − start) for |w| < 0.5, else
// end − (end − start)·(1 − w), each formula accurate at its end.
fn torch_lerp(start: vec4<f32>, end: vec4<f32>, w: f32) -> vec4<f32> {
    if !LERP_HIGH || w < 0.5 {
        return start + exact(w * (end - start));
    }
    return end - exact((end - start) * (1.0 - w));
}
