// f16 as the 16-bit type of a kernel variant: four elements in a vec2<u32>. Stochastic
// rounding is bf16's only (the host refuses it for f16), so it rounds to nearest here.

fn widen4(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(
        f16_widen(w.x & 0xffffu),
        f16_widen(w.x >> 16u),
        f16_widen(w.y & 0xffffu),
        f16_widen(w.y >> 16u),
    );
}

fn narrow4_nearest(x: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(
        f16_nearest(x.x) | (f16_nearest(x.y) << 16u),
        f16_nearest(x.z) | (f16_nearest(x.w) << 16u),
    );
}

fn narrow4_stochastic(x: vec4<f32>, r: vec4<u32>) -> vec2<u32> {
    return narrow4_nearest(x);
}
