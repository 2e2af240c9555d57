//! Deterministic data for the tests.
#![allow(dead_code)]

use burn::tensor::{Device, Tensor, TensorData};

/// Deterministic values in [-scale, scale) (splitmix64 of `seed` and the index).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i.wrapping_mul(0xbf58_476d_1ce4_e5b9));
            z ^= z >> 31;
            z = z.wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 29;
            scale * ((z >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        })
        .collect()
}

/// A tensor of `shape` on `device` holding [`values`].
pub fn tensor<const D: usize>(
    device: &Device, shape: [usize; D], seed: u64, scale: f32,
) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed, scale), shape), device)
}
