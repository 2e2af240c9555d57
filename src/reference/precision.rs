//! 16-bit floats and the dynamic loss scale, on plain numbers: the twins of
//! `shaders/half.wgsl` (conversions, the stochastic-rounding generator) and of the loss
//! scaler in `shaders/norm_finalize.wgsl`.
//!
//! Conversions are PyTorch's (c10's `round_to_nearest_even` for bf16 and
//! `fp16_ieee_from_fp32_value` for f16): round to nearest, ties to even; a NaN becomes
//! `0x7fc0` in bf16 and `sign | 0x7e00` in f16; f16 overflows to ±Inf from 65520 up.

/// bf16 bits → f32 (exact: the bf16 bits are the top half of the f32 pattern).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// f32 → bf16 bits, round to nearest even (PyTorch's `x.to(torch.bfloat16)`).
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return 0x7fc0;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// f32 → bf16 bits, rounded stochastically with random bits `r`: the pattern plus
/// `r mod 2^16`, truncated, so `x` rounds up in magnitude with probability (distance to
/// the bf16 below) / ulp, and E[round(x)] = x. NaN and ±Inf as [`f32_to_bf16`].
pub fn f32_to_bf16_stochastic(x: f32, r: u32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff >= 0x7f80_0000 {
        return f32_to_bf16(x);
    }
    (b.wrapping_add(r & 0xffff) >> 16) as u16
}

/// f16 bits → f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let sign = (h & 0x8000) << 16;
    let (e, m) = ((h >> 10) & 0x1f, h & 0x3ff);
    let bits = match e {
        31 => 0x7f80_0000 | (m << 13),
        0 => (m as f32 * 2f32.powi(-24)).to_bits(),
        _ => ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(sign | bits)
}

/// f32 → f16 bits, round to nearest even (PyTorch's `x.to(torch.float16)`).
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let a = b & 0x7fff_ffff;
    let bits = if a > 0x7f80_0000 {
        0x7e00
    } else if a >= 0x477f_f000 {
        0x7c00
    } else if a < 0x3300_0000 {
        0
    } else {
        let (r, rem, half) = if a < 0x3880_0000 {
            let shift = 126 - (a >> 23);
            let m = (a & 0x7f_ffff) | 0x80_0000;
            (m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1))
        } else {
            ((a - 0x3800_0000) >> 13, a & 0x1fff, 0x1000)
        };
        r + u32::from(rem > half || (rem == half && r & 1 == 1))
    };
    (sign | bits) as u16
}

/// PCG's output hash of one u32 (O'Neill; Jarzynski & Olano, "Hash functions for GPU
/// rendering", 2020): `pcg_hash` in `shaders/half.wgsl`.
pub fn pcg_hash(x: u32) -> u32 {
    let s = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
    (w >> 22) ^ w
}

/// The random bits with which stochastic rounding rounds element `e` (its index in the
/// set's virtual space, mod 2^32) at optimizer step `step` under `seed` (only the low 16
/// count): 16 bits of `pcg((e >> 1) ^ pcg(seed ^ pcg(step)))`, the low half for an even
/// `e`, the high half for an odd one, so one hash serves two elements.
pub fn rounding_bits(seed: u32, step: u32, e: u32) -> u32 {
    let word = pcg_hash((e >> 1) ^ pcg_hash(seed ^ pcg_hash(step)));
    (word >> (16 * (e & 1))) & 0xffff
}

/// A dynamic loss scale's state: PyTorch's `GradScaler` `_scale` and `_growth_tracker`,
/// plus Megatron's hysteresis tracker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleState {
    /// The scale the next backward pass multiplies the loss by.
    pub scale: f32,
    /// Consecutive steps without overflow since the scale last changed.
    pub growth_tracker: u32,
    /// Overflows still tolerated before the scale backs off.
    pub hysteresis_left: u32,
}

/// The loss scale after a step that did (`found_inf`) or did not find a non-finite
/// gradient, `torch._amp_update_scale_` with Megatron's hysteresis:
///
/// - found_inf: `growth_tracker ← 0`, `hysteresis_left ← max(hysteresis_left − 1, 0)`, and
///   when that is 0, `scale ← scale · backoff_factor`;
/// - else `growth_tracker += 1`; when it reaches `growth_interval`: `growth_tracker ← 0`,
///   `hysteresis_left ← hysteresis`, and `scale ← scale · growth_factor` unless that is
///   not finite.
///
/// With `hysteresis` = 1 this is PyTorch's rule exactly.
pub fn update_scale(
    s: ScaleState, found_inf: bool, growth_factor: f32, backoff_factor: f32, growth_interval: u32,
    hysteresis: u32,
) -> ScaleState {
    if found_inf {
        let hysteresis_left = s.hysteresis_left.saturating_sub(1);
        let scale = if hysteresis_left == 0 {
            s.scale * backoff_factor
        } else {
            s.scale
        };
        return ScaleState {
            scale,
            growth_tracker: 0,
            hysteresis_left,
        };
    }
    let successful = s.growth_tracker + 1;
    if successful >= growth_interval {
        let grown = s.scale * growth_factor;
        ScaleState {
            scale: if grown.is_finite() { grown } else { s.scale },
            growth_tracker: 0,
            hysteresis_left: hysteresis,
        }
    } else {
        ScaleState {
            growth_tracker: successful,
            ..s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f16 and bf16 pattern widens and narrows back to itself (NaNs to the
    /// canonical NaN).
    #[test]
    fn every_16_bit_pattern_round_trips() {
        for h in 0..=u16::MAX {
            let (b, f) = (bf16_to_f32(h), f16_to_f32(h));
            assert_eq!(f32_to_bf16(b), if b.is_nan() { 0x7fc0 } else { h });
            let nan16 = (h & 0x8000) | 0x7e00;
            assert_eq!(f32_to_f16(f), if f.is_nan() { nan16 } else { h }, "{h:#x}");
            assert_eq!(f32_to_bf16_stochastic(b, 0xffff_ffff), f32_to_bf16(b));
        }
    }

    /// f16 rounding agrees with the `half` crate's (an independent implementation of
    /// IEEE round-to-nearest-even) on every non-NaN input pattern of a stride.
    #[test]
    fn f16_rounding_agrees_with_half() {
        for b in (0..=u32::MAX).step_by(997) {
            let x = f32::from_bits(b);
            if !x.is_nan() {
                assert_eq!(f32_to_f16(x), half::f16::from_f32(x).to_bits(), "{b:#x}");
                assert_eq!(f32_to_bf16(x), half::bf16::from_f32(x).to_bits(), "{b:#x}");
            }
        }
    }

    /// Ties go to even; just below a tie rounds down; 65520 is the first f16 overflow.
    #[test]
    fn ties_go_to_even() {
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_7fff)), 0x3f80);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65519.996), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0);
        assert_eq!(f32_to_f16(2f32.powi(-25) * 1.0001), 1);
        assert_eq!(f32_to_f16(-3.0 * 2f32.powi(-25)), 0x8002);
    }

    /// Stochastic rounding is unbiased: the mean of many roundings of x is x.
    #[test]
    fn stochastic_rounding_is_unbiased() {
        let x = 1.0 + 0.3 * 2f32.powi(-7); // 0.3 of a bf16 ulp above 1
        let n = 100_000u32;
        let ups = (0..n)
            .filter(|&e| f32_to_bf16_stochastic(x, rounding_bits(7, 1, e)) == 0x3f81)
            .count();
        let p = ups as f64 / f64::from(n);
        assert!((p - 0.3).abs() < 0.01, "{p}");
    }

    /// The scaler: back off on overflow, grow after the interval, hysteresis delays the
    /// back-off.
    #[test]
    fn scaler_rule() {
        let s = ScaleState {
            scale: 8.0,
            growth_tracker: 0,
            hysteresis_left: 1,
        };
        let up = |s, inf| update_scale(s, inf, 2.0, 0.5, 3, 1);
        let s1 = up(s, false);
        let s2 = up(s1, false);
        assert_eq!((s2.scale, s2.growth_tracker), (8.0, 2));
        assert_eq!(up(s2, false).scale, 16.0);
        assert_eq!(up(s2, true).scale, 4.0);
        assert_eq!(up(s2, true).growth_tracker, 0);
        let h = |s, inf| update_scale(s, inf, 2.0, 0.5, 3, 2);
        let s = ScaleState {
            hysteresis_left: 2,
            ..s
        };
        let once = h(s, true);
        assert_eq!((once.scale, once.hysteresis_left), (8.0, 1));
        assert_eq!(h(once, true).scale, 4.0);
        assert_eq!(h(h(once, true), true).scale, 2.0);
    }
}
