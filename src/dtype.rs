//! Element types of a parameter set's gradients and parameters, and the rounding of
//! 16-bit parameter writes.

use serde::{Deserialize, Serialize};

use crate::reference::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};

/// The element type of a set's gradients and of the parameters its model reads.
///
/// 16-bit tensors are stored packed, two elements to a 32-bit word (element `2k` in the
/// low half: a little-endian `u16` array), each tensor starting on a 64-element block, so
/// no two tensors share a word. Kernels widen them exactly to f32 and compute in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dtype {
    /// IEEE binary32.
    #[default]
    F32,
    /// IEEE binary16: 5 exponent bits, finite up to 65504.
    F16,
    /// bfloat16: f32's 8 exponent bits, 7 mantissa bits.
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// Whether the type is 16 bits wide.
    pub fn is_16_bit(self) -> bool {
        self != Dtype::F32
    }

    /// `x` rounded to this type (nearest even) as bits; for a 16-bit type only.
    pub(crate) fn round(self, x: f32) -> u16 {
        debug_assert!(self.is_16_bit(), "only a 16-bit type rounds to 16 bits");
        match self {
            Dtype::Bf16 => f32_to_bf16(x),
            _ => f32_to_f16(x),
        }
    }

    /// 16-bit pattern `h` of this type, widened exactly.
    pub(crate) fn widen(self, h: u16) -> f32 {
        debug_assert!(
            self.is_16_bit(),
            "only a 16-bit type widens 16-bit patterns"
        );
        match self {
            Dtype::Bf16 => bf16_to_f32(h),
            _ => f16_to_f32(h),
        }
    }
}

/// How an optimizer step writes 16-bit parameters (the model copy of f32 master weights,
/// or the parameters themselves without master weights). f32 parameters are unaffected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rounding {
    /// Round to nearest, ties to even (PyTorch's `.to(torch.bfloat16)` / `.to(torch.float16)`).
    #[default]
    NearestEven,
    /// bf16 only: round up in magnitude with probability (dropped bits) / 2^16, the random
    /// bits of element `e` at step `t` being 16 bits of `pcg((e >> 1) ^ pcg(seed ^ pcg(t)))`
    /// ([`crate::reference::rounding_bits`]): unbiased, and the same bits for the same seed,
    /// step and layout on every device.
    Stochastic {
        /// The generator's seed.
        seed: u32,
    },
}
