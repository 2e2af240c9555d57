// bf16 as the 16-bit type of a kernel variant: four elements in a vec2<u32>.

fn widen4(w: vec2<u32>) -> vec4<f32> {
    return bf16_widen4(w);
}

fn narrow4_nearest(x: vec4<f32>) -> vec2<u32> {
    return bf16_nearest4(x);
}

fn narrow4_stochastic(x: vec4<f32>, r: vec4<u32>) -> vec2<u32> {
    return bf16_stochastic4(x, r);
}
