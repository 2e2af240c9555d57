// Divisions and square roots rounded as the f32 reference rounds them (appended after
// update.wgsl to every update kernel; tests/rounding.rs holds them to IEEE on random operands).
// FUSED_FMA (pipeline constant) whether fma rounds once on this device.

fn finite4(x: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u)) != vec4<u32>(0x7f800000u);
}

// Whether this device's fma rounds once (measured when the Context is made: src/device/probe.rs).
override FUSED_FMA: bool = false;

// a / b as the reference rounds it. WGSL allows 2.5 ulp for a division and sqrt is
// "inherited from 1 / inverseSqrt" (NVIDIA's Vulkan compiler uses that room); where a
// momentum sum then cancels, a few ulp of one term became 43 ulp of the result on an H100.
// One correction from the exact remainder r = a − q·b (a fused fma rounds once: r is
// exact), fma(r, 1 / b, q), lands on the correctly rounded quotient (measured on an H100:
// 0 of 262,144 random quotients off, where the plain a / b had 77,917 and q + r / b, which
// the driver rewrites, 42,282). Where fma is not fused
// (lavapipe, whose divisions are correctly rounded already) the remainder would not be
// exact: the plain quotient is kept. Zero, infinite and NaN remainders (b = 0, ±Inf, NaN
// operands) keep it too.
fn div_rn(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    let q = a / b;
    if !FUSED_FMA {
        return q;
    }
    let r = fma(-q, b, a);
    return select(q, fma(r, 1.0 / b, q), finite4(r) & (r != vec4<f32>(0.0)));
}

// sqrt(x) as the reference rounds it: s + (x − s²) / 2s, the remainder by fma (see div_rn;
// the H100 had 44,029 of 262,144 plain square roots off, 0 corrected).
fn sqrt_rn(x: vec4<f32>) -> vec4<f32> {
    let s = sqrt(x);
    if !FUSED_FMA {
        return s;
    }
    let r = fma(-s, s, x);
    return select(s, fma(r, 0.5 / s, s), finite4(r) & (r != vec4<f32>(0.0)));
}

fn div_rn1(a: f32, b: f32) -> f32 {
    return div_rn(vec4<f32>(a), vec4<f32>(b)).x;
}

fn sqrt_rn1(x: f32) -> f32 {
    return sqrt_rn(vec4<f32>(x)).x;
}
