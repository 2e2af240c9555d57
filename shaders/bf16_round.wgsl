// f32 → the nearest bf16 value (ties to even), kept as f32; NaN unchanged:
//   bits(x) + 0x7fff + (bit 16 of x), its low 16 bits cleared.
// Values rounded in place (matmul's GEMM_ROUND_BF16, ns_scale); the twin of
// reference::round_bf16. half.wgsl's bf16_nearest4 is the packed form for stored tensors.

fn bf16_round(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) > 0x7f800000u {
        return x;
    }
    return bitcast<f32>(((b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u) << 16u);
}
