// Shared by every kernel, after the prelude generated from src/consts.rs
// (WORKGROUP_SIZE, VEC4_PER_INVOCATION, the chunk-class lanes, CLIP_EPS, ...).

const NORM_L1: u32 = 0u;
const NORM_L2: u32 = 1u;
const NORM_INF: u32 = 2u;
const NORM_P: u32 = 3u;

const POLICY_SKIP: u32 = 0u;
const POLICY_PROPAGATE: u32 = 1u;
const POLICY_ERROR: u32 = 2u;

const FLAG_INF: u32 = 1u;
const FLAG_NAN: u32 = 2u;

// Written by norm_finalize, read by every update: the device-side step state.
struct StepState {
    total_norm: f32,
    clip_coef: f32,
    nonfinite: u32,
    skipped: u32,
    step: u32,
    bias_correction1: f32,
    bias_correction2: f32,
    _pad: u32,
}

// One reduction's result: Σ|g|^p (max |g| for L∞) and FLAG_INF | FLAG_NAN.
struct Partial {
    value: f32,
    flags: u32,
}

// One row of a slab's chunk table (`layout::Chunk`): a run of one tensor's elements.
struct Chunk {
    tensor: u32,
    start: u32,
    len: u32,
    partial: u32,
}

// Per slab: its length in elements, and its chunk table: num_big whole-workgroup chunks,
// then num_mid chunks of MID_LANES invocations, then small ones of SMALL_LANES.
struct Slab {
    len: u32,
    num_big: u32,
    num_mid: u32,
    num_chunks: u32,
}

// Options of the standalone operations (norm, finalize, clamp).
struct OpParams {
    kind: u32,
    p: f32,
    num_tensors: u32,
    has_norm: u32,
    clip_norm: u32,
    max_norm: f32,
    inv_grad_scale: f32,
    policy: u32,
    count_step: u32,
    bias_correction: u32,
    log_beta1: f32,
    log_beta2: f32,
    clip_value: f32,
    num_big_tensors: u32,
    _pad1: u32,
    _pad2: u32,
}

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

// min(1, max_norm / (norm + CLIP_EPS)), and NaN for a NaN norm (PyTorch multiplies by it
// anyway); the twin of reference::clip_coef.
fn clip_coef(norm: f32, max_norm: f32) -> f32 {
    return select(min(1.0, max_norm / (norm + CLIP_EPS)), norm, is_nan(norm));
}

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

// Per-step options of a fused update. h1..h3 and flags are the optimizer's own
// (see each update shader's header); the rest is shared.
struct Update {
    lr: f32,
    h1: f32,
    h2: f32,
    h3: f32,
    weight_decay: f32,
    flags: u32,
    inv_grad_scale: f32,
    clip_value: f32,
    clip_flags: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const CLIP_BY_NORM: u32 = 1u;
const CLIP_BY_VALUE: u32 = 2u;

// The gradient an update applies: clamp((g · inv_grad_scale) · clip_coef, -c, c).
fn effective_grad(g: vec4<f32>, u: Update, state: StepState) -> vec4<f32> {
    var x = g * u.inv_grad_scale;
    if (u.clip_flags & CLIP_BY_NORM) != 0u {
        x = x * state.clip_coef;
    }
    if (u.clip_flags & CLIP_BY_VALUE) != 0u {
        x = clamp_keep_nan(x, u.clip_value);
    }
    return x;
}

// torch.lerp(start, end, w): two formulas, chosen by w, for accuracy at both ends.
fn torch_lerp(start: vec4<f32>, end: vec4<f32>, w: f32) -> vec4<f32> {
    if w < 0.5 {
        return start + w * (end - start);
    }
    return end - (end - start) * (1.0 - w);
}
