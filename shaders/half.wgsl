// 16-bit floats, packed two to a u32 (element 2k in the low half, as a little-endian u16
// array lays them out), converted with integer ops only, so every backend gives the same
// bits: WGSL leaves the rounding of pack2x16float and its handling of ±Inf and NaN to the
// implementation. Round to nearest even as PyTorch's c10 conversions do (a NaN becomes
// 0x7fc0 in bf16, sign | 0x7e00 in f16); bf16 stochastic rounding adds 16 random bits to the
// f32 pattern and truncates. The twins of src/dtype.rs.

// bf16 → f32: the bf16 bits are the top half of the f32 pattern (exact).
fn bf16_widen(h: u32) -> f32 {
    return bitcast<f32>(h << 16u);
}

// f32 → bf16, round to nearest even.
fn bf16_nearest(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) > 0x7f800000u {
        return 0x7fc0u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

// f32 → bf16, rounded up in magnitude with probability (dropped bits) / 2^16: add r's low
// 16 bits to the pattern and truncate.
fn bf16_stochastic(x: f32, r: u32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) > 0x7f800000u {
        return 0x7fc0u;
    }
    if (b & 0x7fffffffu) == 0x7f800000u {
        return b >> 16u;
    }
    return (b + (r & 0xffffu)) >> 16u;
}

// f16 → f32, exact: subnormals (m·2^-24) scaled by an exact power of two.
fn f16_widen(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if e == 31u {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    if e == 0u {
        let a = f32(m) * 5.9604644775390625e-8;
        return bitcast<f32>(sign | bitcast<u32>(a));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

// f32 → f16, round to nearest even: |x| ≥ 65520 is ±Inf, below 2^-14 a subnormal.
fn f16_nearest(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if a > 0x7f800000u {
        return sign | 0x7e00u;
    }
    if a >= 0x477ff000u {
        return sign | 0x7c00u;
    }
    if a < 0x33000000u {
        return sign;
    }
    var r: u32;
    var rem: u32;
    var half: u32;
    if a < 0x38800000u {
        let shift = 126u - (a >> 23u);
        let m = (a & 0x7fffffu) | 0x800000u;
        r = m >> shift;
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
    } else {
        r = (a - 0x38000000u) >> 13u;
        rem = a & 0x1fffu;
        half = 0x1000u;
    }
    let up = rem > half || (rem == half && (r & 1u) == 1u);
    return sign | (r + select(0u, 1u, up));
}

// PCG's output hash of one u32 (O'Neill; Jarzynski & Olano, "Hash functions for GPU
// rendering"): the generator of stochastic rounding, element by element.
fn pcg_hash(x: u32) -> u32 {
    let s = x * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// The random bits of stochastic rounding for element e of step `step` under `seed`: the
// twin of dtype::rounding_bits.
fn rounding_bits(seed: u32, step: u32, e: u32) -> u32 {
    return pcg_hash(e ^ pcg_hash(seed ^ pcg_hash(step)));
}

// Four bf16 in a vec2<u32>, widened; and four f32 rounded stochastically into one.
fn bf16_widen4(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(
        bf16_widen(w.x & 0xffffu),
        bf16_widen(w.x >> 16u),
        bf16_widen(w.y & 0xffffu),
        bf16_widen(w.y >> 16u),
    );
}

fn bf16_stochastic4(x: vec4<f32>, r: vec4<u32>) -> vec2<u32> {
    return vec2<u32>(
        bf16_stochastic(x.x, r.x) | (bf16_stochastic(x.y, r.y) << 16u),
        bf16_stochastic(x.z, r.z) | (bf16_stochastic(x.w, r.w) << 16u),
    );
}
