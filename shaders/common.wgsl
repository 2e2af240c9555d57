// Shared by every kernel, after the prelude generated from src/kernels/abi.rs: kernel constants,
// the code tables NORM_*, SOURCE_*, POLICY_*, FLAG_*, and the structs shared with Rust
// (StepState, NormOp, Slab, Chunk, Partial, Unit, AgcOp), each generated from its
// #[repr(C)] declaration there.

// Grids of more than 65535 workgroups spill into y; this is the linear index.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// NaN and ±Inf are found by bit pattern: shader compilers may assume floats are finite.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn is_nan4(x: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

// x with its NaN lanes replaced by 0 when `zero` (Optax's zero_nans).
fn zero_nans_if(x: vec4<f32>, zero: bool) -> vec4<f32> {
    return select(x, vec4<f32>(0.0), is_nan4(x) & vec4<bool>(zero));
}

// min(1, max_norm / (norm + CLIP_EPS)), and NaN for a NaN norm (PyTorch multiplies by it
// anyway); the twin of reference::clip_coef.
fn clip_coef(norm: f32, max_norm: f32) -> f32 {
    return select(min(1.0, max_norm / (norm + CLIP_EPS)), norm, is_nan(norm));
}

// NaN and +Inf built from bits (a literal would be folded away); `seed & 0` keeps the
// compiler from treating them as constants.
fn f32_nan(seed: u32) -> f32 {
    return bitcast<f32>(0x7fc00000u | (seed & 0u));
}

fn f32_inf(seed: u32) -> f32 {
    return bitcast<f32>(0x7f800000u | (seed & 0u));
}

// Lanes of the vec4 at element e that lie before `end`.
fn lanes_before(e: u32, end: u32) -> vec4<bool> {
    return (vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(end);
}

// clamp(x, -c, c) with NaN kept (torch.clamp); WGSL's clamp leaves NaN undefined.
fn clamp_keep_nan(x: vec4<f32>, c: f32) -> vec4<f32> {
    let bits = bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu);
    return select(clamp(x, vec4<f32>(-c), vec4<f32>(c)), x, bits > vec4<u32>(0x7f800000u));
}

// The gradient an update applies: clamp((g · inv_grad_scale) · clip_coef, -c, c), all read
// from the step state (clip_coef is 1 without a norm clip, clip_value 0 without a clamp).
// The twin of reference::effective_grad.
fn effective_grad(g: vec4<f32>, st: StepState) -> vec4<f32> {
    let x = g * st.inv_grad_scale * st.clip_coef;
    if st.clip_value > 0.0 {
        return clamp_keep_nan(x, st.clip_value);
    }
    return x;
}

// 1 − β^t as −expm1(t · ln β). 1 − pow(β, t) would cancel catastrophically
// (1 − 0.999 keeps three digits of a pow accurate to a few ulp); a Taylor series keeps
// small arguments to a few ulp, and exp is accurate where the result is not small.
// Adam's bias correction of step t for ln β (per parameter group, in the finalize); the
// twin of reference::bias_correction.
fn one_minus_power(log_beta: f32, t: u32) -> f32 {
    if t == 0u {
        return 0.0;
    }
    let y = f32(t) * log_beta;
    if y < -0.5 {
        return 1.0 - exp(y);
    }
    var sum = 1.0;
    for (var k = 9.0; k >= 2.0; k -= 1.0) {
        sum = 1.0 + sum * y / k;
    }
    return -(y * sum);
}

// Where vec4 i of a slab's virtual space is read and written (locate_direct.wgsl,
// locate_pooled.wgsl): the elementwise kernels and the trust pass.
struct At {
    // The vec4 among the params (and the optimizer states: those are i itself).
    p: u32,
    // The vec4 among the grads.
    g: u32,
    // Its lanes that belong to a tensor; the others are written back unchanged.
    live: vec4<bool>,
}
