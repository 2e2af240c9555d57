// 16-bit floats, packed two to a u32 (element 2k in the low half, as a little-endian u16
// array lays them out), converted four at a time with integer ops and selects only (no
// branches: on a SIMD driver a branch costs both sides and the masks), so every backend
// gives the same bits: WGSL leaves the rounding of pack2x16float and its handling of ±Inf
// and NaN to the implementation. Round to nearest even as PyTorch's c10 conversions do (a
// NaN becomes 0x7fc0 in bf16, sign | 0x7e00 in f16); bf16 stochastic rounding adds 16
// random bits to the f32 pattern and truncates. The twins of src/reference/precision.rs.

// Four 16-bit patterns (one per lane, in the low half) into two words.
fn pack4(h: vec4<u32>) -> vec2<u32> {
    return vec2<u32>(h.x | (h.y << 16u), h.z | (h.w << 16u));
}

// Two words into four 16-bit patterns.
fn unpack4(w: vec2<u32>) -> vec4<u32> {
    return vec4<u32>(w.x & 0xffffu, w.x >> 16u, w.y & 0xffffu, w.y >> 16u);
}

// bf16 → f32: the bf16 bits are the top half of the f32 pattern (exact).
fn bf16_widen4(w: vec2<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(unpack4(w) << vec4<u32>(16u));
}

// f32 → bf16, round to nearest even; NaN → 0x7fc0.
fn bf16_nearest4(x: vec4<f32>) -> vec2<u32> {
    let b = bitcast<vec4<u32>>(x);
    let r = (b + vec4<u32>(0x7fffu) + ((b >> vec4<u32>(16u)) & vec4<u32>(1u))) >> vec4<u32>(16u);
    let nan = (b & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    return pack4(select(r, vec4<u32>(0x7fc0u), nan));
}

// f32 → bf16, rounded up in magnitude with probability (dropped bits) / 2^16: the pattern
// plus r's low 16 bits, truncated (±Inf stays: its low bits are 0); NaN → 0x7fc0.
fn bf16_stochastic4(x: vec4<f32>, r: vec4<u32>) -> vec2<u32> {
    let b = bitcast<vec4<u32>>(x);
    let s = (b + (r & vec4<u32>(0xffffu))) >> vec4<u32>(16u);
    let nan = (b & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    return pack4(select(s, vec4<u32>(0x7fc0u), nan));
}

// f16 → f32, exact: subnormals (m·2^-24) scaled by an exact power of two.
fn f16_widen4(w: vec2<u32>) -> vec4<f32> {
    let h = unpack4(w);
    let sign = (h & vec4<u32>(0x8000u)) << vec4<u32>(16u);
    let e = (h >> vec4<u32>(10u)) & vec4<u32>(0x1fu);
    let m = h & vec4<u32>(0x3ffu);
    let normal = ((e + vec4<u32>(112u)) << vec4<u32>(23u)) | (m << vec4<u32>(13u));
    let special = vec4<u32>(0x7f800000u) | (m << vec4<u32>(13u));
    let subnormal = bitcast<vec4<u32>>(vec4<f32>(m) * 5.9604644775390625e-8);
    let bits = select(select(normal, subnormal, e == vec4<u32>(0u)), special, e == vec4<u32>(31u));
    return bitcast<vec4<f32>>(sign | bits);
}

// f32 → f16, round to nearest even: |x| ≥ 65520 is ±Inf, below 2^-14 a subnormal (the
// mantissa with its implicit bit, shifted right by 126 − exponent), below 2^-25 (and at
// it: the tie goes to even) ±0; NaN → sign | 0x7e00.
fn f16_nearest4(x: vec4<f32>) -> vec2<u32> {
    let b = bitcast<vec4<u32>>(x);
    let sign = (b >> vec4<u32>(16u)) & vec4<u32>(0x8000u);
    let a = b & vec4<u32>(0x7fffffffu);
    let sub = a < vec4<u32>(0x38800000u);
    let shift = clamp(vec4<u32>(126u) - min(a >> vec4<u32>(23u), vec4<u32>(112u)), vec4<u32>(14u), vec4<u32>(24u));
    let m = (a & vec4<u32>(0x7fffffu)) | vec4<u32>(0x800000u);
    let r = select((a - vec4<u32>(0x38000000u)) >> vec4<u32>(13u), m >> shift, sub);
    let rem = select(a & vec4<u32>(0x1fffu), m & ((vec4<u32>(1u) << shift) - vec4<u32>(1u)), sub);
    let half = select(vec4<u32>(0x1000u), vec4<u32>(1u) << (shift - vec4<u32>(1u)), sub);
    let up = (rem > half) | ((rem == half) & ((r & vec4<u32>(1u)) == vec4<u32>(1u)));
    var out = r + select(vec4<u32>(0u), vec4<u32>(1u), up);
    out = select(out, vec4<u32>(0u), a < vec4<u32>(0x33000000u));
    out = select(out, vec4<u32>(0x7c00u), a >= vec4<u32>(0x477ff000u));
    out = select(out, vec4<u32>(0x7e00u), a > vec4<u32>(0x7f800000u));
    return pack4(sign | out);
}

// PCG's output hash of one u32 (O'Neill; Jarzynski & Olano, "Hash functions for GPU
// rendering"): the generator of stochastic rounding, element by element.
fn pcg_hash(x: u32) -> u32 {
    let s = x * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

fn pcg_hash2(x: vec2<u32>) -> vec2<u32> {
    let s = x * vec2<u32>(747796405u) + vec2<u32>(2891336453u);
    let w = ((s >> ((s >> vec2<u32>(28u)) + vec2<u32>(4u))) ^ s) * vec2<u32>(277803737u);
    return (w >> vec2<u32>(22u)) ^ w;
}

// The random bits of stochastic rounding for elements e .. e + 3 (e a multiple of 4) of
// step `step` under `seed`: element e takes 16 bits of pcg((e >> 1) ^ pcg(seed ^ pcg(step))),
// the low half for an even e, the high half for an odd one (one hash per two elements);
// the twin of reference::rounding_bits.
fn rounding_bits4(seed: u32, step: u32, e: u32) -> vec4<u32> {
    let key = pcg_hash(seed ^ pcg_hash(step));
    let h = pcg_hash2(vec2<u32>(e >> 1u, (e >> 1u) + 1u) ^ vec2<u32>(key));
    return vec4<u32>(h.x, h.x >> 16u, h.y, h.y >> 16u);
}
