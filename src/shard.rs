//! The global norm of a model sharded across ranks (ZeRO, FSDP, tensor parallelism), in
//! two phases with the combine in between done by the caller's transport (MPI, NCCL's
//! host side, a file, anything that moves a few words).
//!
//! 1. **Phase 1**, per rank: [`ParamSet::norm_partial`](crate::ParamSet::norm_partial) (or
//!    [`Optimizer::norm_partial`](crate::Optimizer::norm_partial), which honours parameter
//!    groups marked [replicated](crate::ParamGroup::replicated)) runs the norm passes on the
//!    rank's gradients and reads back one [`ShardPartial`]: the power sum
//!    `S_r = Σ_{t counted on r} s_t` of the per-tensor sums `s_t = Σ_i |g_{t,i}|^p`
//!    (`max` for L∞), held **exactly** (a 320-bit fixed-point sum of the f32 `s_t`), and
//!    the NaN / ±Inf / overflow flags of every tensor of the rank, counted or not.
//! 2. **Combine**, every rank: [`ShardPartial::to_words`] ([`PARTIAL_WORDS`] u64 per rank),
//!    an all-gather, [`ShardPartial::from_words`], then [`combine`]:
//!    `‖g‖ = (Σ_r S_r)^(1/p)` (`max_r` for L∞), NaN if a rank saw a NaN, +Inf if one saw
//!    ±Inf or overflowed.
//! 3. **Phase 2**, every rank: the step with
//!    [`StepOptions::total_norm`](crate::StepOptions::total_norm) set to that norm (or
//!    [`ParamSet::clip_grads_with_norm`](crate::ParamSet::clip_grads_with_norm)): the
//!    clip and update with no second norm pass. A non-finite total skips the step on every
//!    rank under `Nonfinite::Skip`.
//!
//! Because the sum is exact, the total is a function of the multiset of per-tensor sums
//! alone: the same bits on every rank, whatever the order the partials arrive in, the
//! number of ranks, or how the tensors are spread over them. A tensor's sum `s_t` depends
//! only on the tensor's own gradients (its chunking is its own: a tensor that would cross a
//! slab boundary starts on a chunk boundary, `layout::place`), so a model sharded over
//! N ranks gets bit-for-bit the total of the same model on one rank through the same two
//! phases. The one-pass step ([`Clip::GlobalNorm`](crate::Clip) without `total_norm`)
//! folds the `s_t` in f32 instead: it agrees with the two-phase total to a few f32 ulps.

use crate::error::{Error, Result};
use crate::kernels::abi::{FLAG_INF, FLAG_NAN, NORM_INF};
use crate::options::{Nonfinite, Norm};

/// u64 words of [`ShardPartial::to_words`]: a header, the norm order, the flags, the max
/// (L∞) and the exact sum's limbs.
pub const PARTIAL_WORDS: usize = 4 + LIMBS;

/// 32-bit limbs of the exact sum: a finite f32 is `m · 2^(e − 149)` with `m < 2^24` and
/// `0 ≤ e ≤ 253`, so a sum of up to 2^32 of them fits in 24 + 253 + 32 = 309 bits.
const LIMBS: usize = 10;

/// `"clipshrd"`, the first word of every encoded partial.
const MAGIC: u64 = u64::from_be_bytes(*b"clipshrd");

/// Flag bits of an encoded partial.
const HAS_NAN: u64 = 1;
const HAS_INF: u64 = 2;
const OVERFLOW: u64 = 4;
const ZERO_NANS: u64 = 8;

/// One rank's share of a sharded global norm (phase 1's result; see the [module
/// docs](self)): `Σ_t s_t` over the tensors the rank counts, exact, with the non-finite
/// flags of all its tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardPartial {
    norm: Norm,
    zero_nans: bool,
    sum: ExactSum,
    max: f32,
    has_nan: bool,
    has_inf: bool,
    overflow: bool,
    tensor_sums: Vec<f32>,
}

impl ShardPartial {
    /// The partial of one rank from its per-tensor power sums `s_t` and flags, counting
    /// the tensors where `counted[t]`; the flags of every tensor count.
    pub(crate) fn from_tensor_sums(
        norm: Norm, nonfinite: Nonfinite, sums: &[(f32, u32)], counted: &[bool],
    ) -> ShardPartial {
        let mut out = ShardPartial::empty(norm, nonfinite);
        for (&(value, flags), &counts) in sums.iter().zip(counted) {
            out.has_nan |= flags & FLAG_NAN != 0;
            out.has_inf |= flags & FLAG_INF != 0;
            // A tensor's NaN zeroed under ZeroNans leaves its sum valid.
            let valid = flags & FLAG_INF == 0 && (flags & FLAG_NAN == 0 || out.zero_nans);
            if counts && valid {
                out.add(value);
            }
            out.tensor_sums.push(if counts { value } else { 0.0 });
        }
        out
    }

    /// A rank that holds no tensor (or counts none): the identity of [`combine`].
    pub fn empty(norm: Norm, nonfinite: Nonfinite) -> ShardPartial {
        ShardPartial {
            norm,
            zero_nans: nonfinite == Nonfinite::ZeroNans,
            sum: ExactSum::default(),
            max: 0.0,
            has_nan: false,
            has_inf: false,
            overflow: false,
            tensor_sums: Vec::new(),
        }
    }

    fn add(&mut self, value: f32) {
        if !value.is_finite() || value < 0.0 {
            // An f32 sum that overflowed (its elements were finite).
            self.overflow = true;
        } else if self.norm.code().0 == NORM_INF {
            self.max = self.max.max(value);
        } else {
            self.sum.add(value);
        }
    }

    /// The norm this partial is of.
    pub fn norm(&self) -> Norm {
        self.norm
    }

    /// `Σ_t s_t` over the counted tensors (`max_t` for L∞), rounded to f64 (the exact
    /// value travels in [`ShardPartial::to_words`]).
    pub fn value(&self) -> f64 {
        if self.norm.code().0 == NORM_INF {
            f64::from(self.max)
        } else {
            self.sum.to_f64()
        }
    }

    /// Some gradient of the rank was NaN (ignored by the total under `ZeroNans`) or ±Inf,
    /// or a tensor's f32 power sum overflowed.
    pub fn nonfinite(&self) -> bool {
        self.has_nan || self.has_inf || self.overflow
    }

    /// Each tensor's `s_t` in the set's order (0 for a tensor the rank does not count):
    /// `s_t^(1/p)` is the tensor's own norm. Not part of [`ShardPartial::to_words`].
    pub fn tensor_sums(&self) -> &[f32] {
        &self.tensor_sums
    }

    /// The partial as [`PARTIAL_WORDS`] words for an all-gather (the per-tensor sums stay
    /// local). Little-endian machines and big-endian ones exchange the same values.
    pub fn to_words(&self) -> [u64; PARTIAL_WORDS] {
        let (kind, p) = self.norm.code();
        let flags = [
            (self.has_nan, HAS_NAN),
            (self.has_inf, HAS_INF),
            (self.overflow, OVERFLOW),
            (self.zero_nans, ZERO_NANS),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .fold(0, |acc, (_, bit)| acc | bit);
        let mut words = [0u64; PARTIAL_WORDS];
        words[0] = MAGIC;
        words[1] = u64::from(kind) << 32 | u64::from(p.to_bits());
        words[2] = flags;
        words[3] = u64::from(self.max.to_bits());
        words[4..].copy_from_slice(&self.sum.limbs);
        words
    }

    /// Decodes [`ShardPartial::to_words`]; anything else is [`Error::InvalidShardPartial`].
    pub fn from_words(words: &[u64]) -> Result<ShardPartial> {
        let bad = |what: &str| Error::InvalidShardPartial(what.to_string());
        if words.len() != PARTIAL_WORDS {
            return Err(Error::InvalidShardPartial(format!(
                "{} words; a partial is {PARTIAL_WORDS} (ShardPartial::to_words)",
                words.len()
            )));
        }
        if words[0] != MAGIC {
            return Err(bad("the first word is not a ShardPartial header"));
        }
        let kind = (words[1] >> 32) as u32;
        let p = f32::from_bits(words[1] as u32);
        let norm = match p {
            1.0 => Norm::L1,
            2.0 => Norm::L2,
            p if p == f32::INFINITY => Norm::Inf,
            p => Norm::P(p)
                .validate()
                .map_err(|_| bad("invalid norm order"))?,
        };
        let norm = match norm.code() {
            (k, _) if k == kind => norm,
            _ => return Err(bad("the norm kind does not match its order")),
        };
        let flags = words[2];
        let max = f32::from_bits(words[3] as u32);
        let mut limbs = [0u64; LIMBS];
        limbs.copy_from_slice(&words[4..]);
        if flags > 15
            || words[3] >> 32 != 0
            || max.is_nan()
            || max < 0.0
            || limbs.iter().any(|&l| l >> 32 != 0)
        {
            return Err(bad("a field is out of range"));
        }
        Ok(ShardPartial {
            norm,
            zero_nans: flags & ZERO_NANS != 0,
            sum: ExactSum { limbs },
            max,
            has_nan: flags & HAS_NAN != 0,
            has_inf: flags & HAS_INF != 0,
            overflow: flags & OVERFLOW != 0,
            tensor_sums: Vec::new(),
        })
    }
}

/// The total norm over every rank's partial (phase 2's input), the same bits whatever the
/// order of `partials`: `(Σ_r S_r)^(1/p)` from the exact sum (`max_r` for L∞), rounded to
/// f64, rooted in f64 and rounded to f32. NaN when a rank saw a NaN (unless every partial
/// was taken under `ZeroNans`), +Inf when a rank saw ±Inf or its sum overflowed, or the
/// total exceeds f32. Partials of different norms, or under different NaN policies, are
/// [`Error::InvalidShardPartial`], and so is an empty list.
pub fn combine(partials: &[ShardPartial]) -> Result<f32> {
    let first = partials.first().ok_or_else(|| {
        Error::InvalidShardPartial("no partials to combine: pass one per rank".into())
    })?;
    let mut total = ShardPartial::empty(first.norm, Nonfinite::Skip);
    for (r, part) in partials.iter().enumerate() {
        if part.norm.code() != first.norm.code() || part.zero_nans != first.zero_nans {
            return Err(Error::InvalidShardPartial(format!(
                "rank {r}'s partial is of {:?} (zero NaNs: {}), rank 0's of {:?} (zero NaNs: {}): every rank must take the same norm under the same policy",
                part.norm, part.zero_nans, first.norm, first.zero_nans
            )));
        }
        total.sum.add_sum(&part.sum);
        total.max = total.max.max(part.max);
        total.has_nan |= part.has_nan;
        total.has_inf |= part.has_inf;
        total.overflow |= part.overflow;
    }
    if total.has_nan && !first.zero_nans {
        return Ok(f32::NAN);
    }
    if total.has_inf || total.overflow {
        return Ok(f32::INFINITY);
    }
    let s = total.value();
    let root = match first.norm.order() {
        1.0 => s,
        2.0 => s.sqrt(),
        p if p == f32::INFINITY => s,
        p => s.powf(1.0 / f64::from(p)),
    };
    Ok(root as f32)
}

/// A sum of non-negative finite f32 values, exact: fixed point in units of 2^-149 (the
/// least subnormal), 32 bits per limb, least significant limb first. Integer addition is
/// associative, so the sum does not depend on the order of its terms.
#[derive(Clone, Debug, Default, PartialEq)]
struct ExactSum {
    limbs: [u64; LIMBS],
}

impl ExactSum {
    fn add(&mut self, x: f32) {
        let bits = x.to_bits();
        let exponent = (bits >> 23) & 0xff;
        let fraction = u64::from(bits & 0x7f_ffff);
        // x = m · 2^(shift − 149): subnormals have no implicit bit and the shift of e = 1.
        let (m, shift) = if exponent == 0 {
            (fraction, 0)
        } else {
            (fraction | 0x80_0000, exponent - 1)
        };
        let (limb, within) = ((shift / 32) as usize, shift % 32);
        let wide = m << within; // < 2^55: this limb's 32 bits and the next's
        self.add_at(limb, wide & 0xffff_ffff);
        self.add_at(limb + 1, wide >> 32);
    }

    fn add_sum(&mut self, other: &ExactSum) {
        for (i, &l) in other.limbs.iter().enumerate() {
            self.add_at(i, l);
        }
    }

    /// Adds `v < 2^32` at limb `i` and carries. Carries out of the top limb would need 2^32
    /// terms of the largest f32: they saturate there instead (the total is +Inf in f32
    /// either way).
    fn add_at(&mut self, mut i: usize, mut v: u64) {
        while v != 0 && i < LIMBS {
            let s = self.limbs[i] + v;
            self.limbs[i] = s & 0xffff_ffff;
            v = s >> 32;
            i += 1;
        }
        if v != 0 {
            self.limbs = [0xffff_ffff; LIMBS];
        }
    }

    /// Rounded to nearest (even): the top three limbs with every lower bit as a sticky
    /// bit, converted by the integer-to-float rounding, times an exact power of two.
    fn to_f64(&self) -> f64 {
        let Some(top) = self.limbs.iter().rposition(|&l| l != 0) else {
            return 0.0;
        };
        let low = top.saturating_sub(2);
        let mut v: u128 = 0;
        for i in (low..=top).rev() {
            v = v << 32 | u128::from(self.limbs[i]);
        }
        if self.limbs[..low].iter().any(|&l| l != 0) {
            v |= 1; // below the 53rd bit whenever there are lower limbs (v ≥ 2^64)
        }
        let exponent = 32 * low as i32 - 149;
        v as f64 * f64::from_bits(((exponent + 1023) as u64) << 52)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(norm: Norm, values: &[f32]) -> ShardPartial {
        let sums: Vec<(f32, u32)> = values.iter().map(|&v| (v, 0)).collect();
        ShardPartial::from_tensor_sums(norm, Nonfinite::Skip, &sums, &vec![true; values.len()])
    }

    #[test]
    fn exact_sum_is_exact_and_order_free() {
        // 1 + 2^-149 + 2^100 − ... : f64 alone would lose the small terms.
        let terms = [
            1.0f32,
            f32::from_bits(1),
            2f32.powi(100),
            3.5,
            f32::MIN_POSITIVE,
        ];
        let mut a = ExactSum::default();
        terms.iter().for_each(|&x| a.add(x));
        let mut b = ExactSum::default();
        terms.iter().rev().for_each(|&x| b.add(x));
        assert_eq!(a, b);
        assert_eq!(a.to_f64(), 2f64.powi(100)); // the rest is below half an ulp
        let mut c = ExactSum::default();
        [1.0f32, 0.5, 0.25, 3.0].iter().for_each(|&x| c.add(x));
        assert_eq!(c.to_f64(), 4.75);
        let mut d = ExactSum::default();
        d.add(f32::MAX);
        d.add(f32::MAX);
        assert_eq!(d.to_f64(), 2.0 * f64::from(f32::MAX));
    }

    #[test]
    fn exact_sum_rounds_to_nearest() {
        // 2^53 + 1 + 2^-149: the sticky bit pushes the tie up to 2^53 + 2.
        let mut s = ExactSum::default();
        s.add(2f32.powi(53));
        s.add(1.0);
        assert_eq!(s.to_f64(), 2f64.powi(53)); // a tie, to even
        s.add(f32::from_bits(1));
        assert_eq!(s.to_f64(), 2f64.powi(53) + 2.0);
    }

    #[test]
    fn words_round_trip_and_reject_garbage() {
        let p = partial(Norm::P(3.0), &[1.0, 2.5, 1e-30]);
        let q = ShardPartial::from_words(&p.to_words()).unwrap();
        assert_eq!(q.to_words(), p.to_words());
        assert_eq!(q.value(), p.value());
        let mut w = p.to_words();
        w[0] ^= 1;
        assert!(matches!(
            ShardPartial::from_words(&w),
            Err(Error::InvalidShardPartial(_))
        ));
        assert!(ShardPartial::from_words(&w[1..]).is_err());
        let mut w = p.to_words();
        w[6] = 1 << 40;
        assert!(ShardPartial::from_words(&w).is_err());
    }

    #[test]
    fn combine_is_the_norm_of_the_union() {
        let all = partial(Norm::L2, &[9.0, 16.0, 0.25, 1e-20]);
        let split = [
            partial(Norm::L2, &[1e-20, 16.0]),
            partial(Norm::L2, &[0.25, 9.0]),
        ];
        assert_eq!(combine(&[all]).unwrap(), combine(&split).unwrap());
        assert_eq!(
            combine(&[split[1].clone(), split[0].clone()]).unwrap(),
            combine(&split).unwrap()
        );
        let inf = [partial(Norm::Inf, &[3.0]), partial(Norm::Inf, &[5.0, 1.0])];
        assert_eq!(combine(&inf).unwrap(), 5.0);
        assert_eq!(combine(&[partial(Norm::L1, &[1.5, 2.0])]).unwrap(), 3.5);
        assert!(combine(&[]).is_err());
        assert!(combine(&[partial(Norm::L1, &[1.0]), partial(Norm::L2, &[1.0])]).is_err());
    }

    #[test]
    fn flags_reach_the_total() {
        let nan =
            ShardPartial::from_tensor_sums(Norm::L2, Nonfinite::Skip, &[(0.0, FLAG_NAN)], &[false]);
        let fine = partial(Norm::L2, &[4.0]);
        assert!(combine(&[fine.clone(), nan]).unwrap().is_nan());
        let inf =
            ShardPartial::from_tensor_sums(Norm::L2, Nonfinite::Skip, &[(0.0, FLAG_INF)], &[true]);
        assert_eq!(combine(&[inf, fine.clone()]).unwrap(), f32::INFINITY);
        let overflow = partial(Norm::L2, &[f32::INFINITY]);
        assert!(overflow.nonfinite());
        assert_eq!(combine(&[overflow, fine]).unwrap(), f32::INFINITY);
        // Under ZeroNans a NaN's tensor still counts, its NaNs as 0.
        let zeroed = ShardPartial::from_tensor_sums(
            Norm::L2,
            Nonfinite::ZeroNans,
            &[(4.0, FLAG_NAN)],
            &[true],
        );
        assert!(zeroed.nonfinite());
        assert_eq!(combine(&[zeroed]).unwrap(), 2.0);
    }
}
