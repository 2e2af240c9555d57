// f16 as the 16-bit type of a kernel variant: four elements in a vec2<u32>. Stochastic
// rounding is bf16's only (the host refuses it for f16), so it rounds to nearest here.

fn widen4(w: vec2<u32>) -> vec4<f32> {
    return f16_widen4(w);
}

fn narrow4_nearest(x: vec4<f32>) -> vec2<u32> {
    return f16_nearest4(x);
}

fn narrow4_stochastic(x: vec4<f32>, r: vec4<u32>) -> vec2<u32> {
    return f16_nearest4(x);
}
