//! The reference of `shaders/rules/adamw8bit.wgsl` and of the 8-bit state storage
//! (`shaders/q8_update.wgsl`): bitsandbytes' `AdamW8bit` on the CPU, its moments
//! quantized blockwise to 8-bit codes of bitsandbytes' dynamic maps.
//!
//! A quantized state is held here as its dequantized values (`map[code] · absmax`, exactly
//! what the device computes from its codes), so the reference keeps the f32 slots of every
//! other rule and `States::get` of a device optimizer reads the same numbers.

use crate::reference::dynamic_maps::{SIGNED_BITS, UNSIGNED_BITS};
use crate::reference::TensorStep;

/// Elements per quantization block (one absmax each), counted from a tensor's first
/// element: bitsandbytes' blockwise optimizers' 256.
pub const QUANT_BLOCK: usize = 256;

/// The smallest absmax a partial block is scaled by (bitsandbytes' `clamp(min=1e-38)`).
const ABSMAX_FLOOR: f32 = 1e-38;

/// bitsandbytes' dynamic quantization map (`create_dynamic_map(signed)`): 256 ascending
/// codes in [−1, 1], signed for the first moment, unsigned for the second.
pub fn dynamic_map(signed: bool) -> [f32; 256] {
    let bits = if signed { &SIGNED_BITS } else { &UNSIGNED_BITS };
    bits.map(f32::from_bits)
}

/// The 255 rounding bounds of `map`: `(map[j] + map[j+1]) / 2` in f32, and a 256th of +∞.
/// A scaled value's code is the number of bounds below it (a bound rounds down).
pub fn dynamic_bounds(map: &[f32; 256]) -> [f32; 256] {
    std::array::from_fn(|j| match j {
        255 => f32::INFINITY,
        _ => (map[j] + map[j + 1]) / 2.0,
    })
}

/// The code of `x` (already scaled by its block's absmax): `clamp(x, −1, 1)`, then the
/// number of bounds strictly below it (bitsandbytes' `bucketize`), by a binary search of
/// eight halvings; NaN compares false with every bound: code 0 (the shader's table search
/// gives the same codes, `src/kernels/q8.rs`).
pub fn nearest_code(x: f32, bounds: &[f32; 256]) -> u8 {
    let s = clamp_keep_nan(x);
    let mut lo = 0usize;
    for half in [128, 64, 32, 16, 8, 4, 2, 1] {
        if bounds[lo + half - 1] < s {
            lo += half;
        }
    }
    lo as u8
}

/// `clamp(x, −1, 1)` keeping NaN (`torch.clamp`).
fn clamp_keep_nan(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.clamp(-1.0, 1.0)
    }
}

/// The largest `|x|` of `block`, NaN when one is NaN (`torch.max`).
fn absmax(block: &[f32]) -> f32 {
    block.iter().fold(0.0f32, |m, &x| {
        let a = x.abs();
        if m.is_nan() || a.is_nan() {
            f32::NAN
        } else {
            m.max(a)
        }
    })
}

/// One block quantized as bitsandbytes' portable kernel does (`quantize_blockwise`,
/// `backends/default/ops.py`): `A = max |x|`; a whole block scales by `x · (1 / max(A,
/// 1e-38))` and keeps `A`, a partial one (a tensor's last) by `x / max(A, 1e-38)` and keeps
/// `max(A, 1e-38)`; the code of each scaled value ([`nearest_code`]). Returns the codes and
/// the absmax kept.
pub fn quantize_block(block: &[f32], bounds: &[f32; 256]) -> (Vec<u8>, f32) {
    let a = absmax(block);
    let floored = if a.is_nan() { a } else { a.max(ABSMAX_FLOOR) };
    let whole = block.len() == QUANT_BLOCK;
    let inv = 1.0 / floored;
    let codes = block
        .iter()
        .map(|&x| nearest_code(if whole { x * inv } else { x / floored }, bounds))
        .collect();
    (codes, if whole { a } else { floored })
}

/// `values` quantized blockwise (blocks of [`QUANT_BLOCK`] from the first) with `map`, and
/// replaced by their dequantized values `map[code] · absmax`.
pub fn quantize_dequantize(values: &mut [f32], map: &[f32; 256]) {
    let bounds = dynamic_bounds(map);
    for block in values.chunks_mut(QUANT_BLOCK) {
        let (codes, a) = quantize_block(block, &bounds);
        for (x, c) in block.iter_mut().zip(codes) {
            *x = map[c as usize] * a;
        }
    }
}

/// One `bitsandbytes.optim.AdamW8bit` step over one tensor (`step` = 1 on the first), its
/// moments by slot `exp_avg` (`m`) and `exp_avg_sq` (`v`), held dequantized:
/// ```text
/// m ← m·β1 + (1 − β1)·g;   v ← v·β2 + (1 − β2)·g·g          (from the dequantized states)
/// p ← p·(1 − lr·wd)                                          (when wd > 0)
/// 8-bit (numel ≥ min_8bit_size):  p ← p + (−lr / c1)·(m / (sqrt(v) / c2 + eps))
/// f32 (smaller tensors):          p ← p + (−lr·c2 / c1)·(m / (sqrt(v) + eps·c2))
/// m, v ← quantized and dequantized, blockwise (8-bit tensors only)
/// ```
/// with `c1 = 1 − β1^t`, `c2 = sqrt(1 − β2^t)`: bitsandbytes' CPU steps
/// (`_optimizer_update_8bit_blockwise_cpu`, `_optimizer_update_32bit_cpu`) in their order,
/// each scalar in f64 then rounded; the update uses the moments before requantization.
pub fn adamw8bit(
    t: TensorStep<'_>, step: u32, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64,
    min_8bit_size: u64,
) {
    let (params, grads, [exp_avg, exp_avg_sq]) = t.kept("AdamW8bit");
    let quantized = params.len() as u64 >= min_8bit_size;
    let (b1, b2) = betas;
    let c1 = crate::reference::bias_correction(b1, step);
    let c2 = crate::reference::bias_correction(b2, step).sqrt();
    let (beta1, one_minus_b1) = (b1 as f32, (1.0 - b1) as f32);
    let (beta2, one_minus_b2) = (b2 as f32, (1.0 - b2) as f32);
    let decay = (weight_decay > 0.0).then_some((1.0 - lr * weight_decay) as f32);
    let (neg_step, c2_f32, eps_f32) = if quantized {
        (-(lr / c1) as f32, c2 as f32, eps as f32)
    } else {
        (-(lr * c2 / c1) as f32, 0.0, (eps * c2) as f32)
    };
    for i in 0..params.len() {
        let g = grads[i];
        let m = exp_avg[i] * beta1 + one_minus_b1 * g;
        let v = exp_avg_sq[i] * beta2 + one_minus_b2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        let mut p = params[i];
        if let Some(factor) = decay {
            p *= factor;
        }
        let u = if quantized {
            m / (v.sqrt() / c2_f32 + eps_f32)
        } else {
            m / (v.sqrt() + eps_f32)
        };
        params[i] = p + neg_step * u;
    }
    if quantized {
        quantize_dequantize(exp_avg, &dynamic_map(true));
        quantize_dequantize(exp_avg_sq, &dynamic_map(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The maps are ascending, hold 0 and 1, and the bounds split them: each code is the
    /// nearest to its own value.
    #[test]
    fn each_code_quantizes_to_itself() {
        for signed in [true, false] {
            let map = dynamic_map(signed);
            assert!(map.windows(2).all(|w| w[0] < w[1]), "ascending");
            assert_eq!(map[255], 1.0);
            let zero = map.iter().position(|&x| x == 0.0).expect("0 is a code");
            assert_eq!(zero, if signed { 127 } else { 0 });
            let bounds = dynamic_bounds(&map);
            for (c, &x) in map.iter().enumerate() {
                assert_eq!(nearest_code(x, &bounds) as usize, c, "code {c}");
            }
            // A midpoint rounds down; just past it, up.
            let mid = bounds[200];
            assert_eq!(nearest_code(mid, &bounds), 200);
            assert_eq!(
                nearest_code(f32::from_bits(mid.to_bits() + 1), &bounds),
                201
            );
            assert_eq!(nearest_code(2.0, &bounds), 255);
            assert_eq!(nearest_code(-2.0, &bounds), 0);
        }
    }

    /// A whole block keeps its absmax and scales by its reciprocal; a partial block keeps
    /// at least 1e-38 and divides; an all-zero block dequantizes to zeros.
    #[test]
    fn blocks_keep_bitsandbytes_absmax() {
        let bounds = dynamic_bounds(&dynamic_map(true));
        let mut whole = vec![0.0f32; QUANT_BLOCK];
        whole[3] = -2.0;
        whole[4] = 1.0;
        let (codes, a) = quantize_block(&whole, &bounds);
        assert_eq!(a, 2.0);
        assert_eq!(codes[3], 0);
        assert_eq!(codes[0], 127);
        let (codes, a) = quantize_block(&[0.0; 5], &bounds);
        assert_eq!(a, 1e-38);
        assert!(codes.iter().all(|&c| c == 127));
        let (codes, a) = quantize_block(&vec![0.0; QUANT_BLOCK], &bounds);
        assert_eq!(a, 0.0);
        assert!(codes.iter().all(|&c| c == 127));
        let mut values = vec![0.5f32, -0.25, 1e-7, 3.0];
        quantize_dequantize(&mut values, &dynamic_map(true));
        assert_eq!(values[3], 3.0);
        assert_eq!(
            values[2], 0.0,
            "1e-7 / 3 is nearer 0 than the smallest code"
        );
    }

    /// bitsandbytes' `AdamW8bit`, twelve steps of three configurations
    /// (`fixtures/bitsandbytes.json`, `scripts/make_bnb_fixtures.py`): each step, started
    /// from bitsandbytes' parameters and (dequantized) states before it, lands within a
    /// reference step's distance of its parameters after it, and on its states: the same
    /// absmax and codes, but where ATen's fused multiply-add left a moment on the other side
    /// of a rounding bound (one code apart, at most one element in 2,000).
    #[test]
    fn steps_as_bitsandbytes() {
        use crate::reference::golden::{assert_ulps, f32s};
        use serde_json::Value;
        let text = include_str!("../../../fixtures/bitsandbytes.json");
        let fixtures: Value =
            serde_json::from_str(text).expect("fixtures/bitsandbytes.json parses");
        let map_of = |v: &Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|b| f32::from_bits(b.as_u64().unwrap() as u32))
                .collect()
        };
        assert_eq!(
            map_of(&fixtures["maps"]["signed"]),
            dynamic_map(true).to_vec()
        );
        assert_eq!(
            map_of(&fixtures["maps"]["unsigned"]),
            dynamic_map(false).to_vec()
        );
        let (mut decisions, mut flips) = (0usize, 0usize);
        for case in fixtures["optimizers"].as_array().unwrap() {
            let kw = &case["kwargs"];
            let num = |k: &str| kw[k].as_f64().unwrap();
            let betas = (
                kw["betas"][0].as_f64().unwrap(),
                kw["betas"][1].as_f64().unwrap(),
            );
            let min_size = kw["min_8bit_size"].as_u64().unwrap();
            let mut params = f32s(&case["params"]);
            let n = params.len();
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            for (k, step) in case["steps"].as_array().unwrap().iter().enumerate() {
                let what = format!("AdamW8bit {kw} step {}", k + 1);
                let grads = f32s(&step["grad"]);
                let t = TensorStep {
                    params: &mut params,
                    grads: &grads,
                    shape: &[],
                    states: [Some(&mut m), Some(&mut v), None],
                };
                adamw8bit(
                    t,
                    k as u32 + 1,
                    num("lr"),
                    betas,
                    num("eps"),
                    num("weight_decay"),
                    min_size,
                );
                let want_params = f32s(&step["params"]);
                assert_ulps(&params, &want_params, &format!("{what}: params"));
                let state = &step["state"];
                for (name, signed, ours) in
                    [("exp_avg", true, &mut m), ("exp_avg_sq", false, &mut v)]
                {
                    let want = if (n as u64) < min_size {
                        let want = f32s(&state[name]);
                        assert_ulps(ours, &want, &format!("{what}: {name}"));
                        want
                    } else {
                        let map = dynamic_map(signed);
                        let codes = state[format!("{name}_codes")].as_array().unwrap();
                        let absmax = f32s(&state[format!("{name}_absmax")]);
                        let want: Vec<f32> = codes
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                map[c.as_u64().unwrap() as usize] * absmax[i / QUANT_BLOCK]
                            })
                            .collect();
                        for (i, (&got, &w)) in ours.iter().zip(&want).enumerate() {
                            decisions += 1;
                            let a = absmax[i / QUANT_BLOCK];
                            // The code whose value is nearest x, under bitsandbytes' absmax.
                            let code = |x: f32| {
                                (0..256).min_by(|&c, &d| {
                                    let e = |c: usize| (map[c] * a - x).abs();
                                    e(c).total_cmp(&e(d))
                                })
                            };
                            if crate::reference::ulps(got, w)
                                > crate::consts::tolerance::UPDATE_ULPS
                            {
                                flips += 1;
                                let (g, c) = (code(got).unwrap(), code(w).unwrap());
                                assert_eq!(
                                    g.abs_diff(c),
                                    1,
                                    "{what}: {name}[{i}] reference {got:e}, bitsandbytes {w:e}"
                                );
                            }
                        }
                        want
                    };
                    // The next step starts from bitsandbytes' state.
                    *ours = want;
                }
                params = want_params;
            }
        }
        assert!(decisions > 30_000, "{decisions}");
        assert!(
            flips * 2000 <= decisions,
            "{flips} of {decisions} codes differ"
        );
    }
}
