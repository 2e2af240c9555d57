//! The matrix product, the twin of `shaders/matmul.wgsl`: `C = alpha·op(L)·op(R) + beta·D`
//! with f32 products accumulated in order of `k`, the result optionally rounded to bf16.

use super::precision::{bf16_to_f32, f32_to_bf16};

/// One product of a batch: `C = alpha·op(L)·op(R) + beta·D`, `op(L)` of `m × k`, `op(R)`
/// of `k × n`, `C` and `D` of `m × n`, every matrix row-major and dense. `op(X)` is `Xᵀ`
/// when the operand's `transpose` flag is set (the matrix is then stored `k × m`, or
/// `n × k`), read in place, never copied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// Rows of `op(L)`, `C` and `D`.
    pub m: usize,
    /// Columns of `op(L)`, rows of `op(R)`: the summed dimension.
    pub k: usize,
    /// Columns of `op(R)`, `C` and `D`.
    pub n: usize,
    /// `op(L) = Lᵀ` (`L` stored `k × m`).
    pub transpose_left: bool,
    /// `op(R) = Rᵀ` (`R` stored `n × k`).
    pub transpose_right: bool,
    /// Scales the product.
    pub alpha: f32,
    /// Scales the addend `D`; 0: no addend (`D` is not read, so it may hold anything).
    pub beta: f32,
    /// Round each result to the nearest bf16 (even on ties), kept as an f32: PyTorch's
    /// bf16 `addmm` on f32 accumulators, as `torch.optim.Muon`'s Newton–Schulz runs.
    pub round_bf16: bool,
}

impl Gemm {
    /// `C = op(L)·op(R)` of `m × k` by `k × n`: no transposes, `alpha` 1, no addend, f32.
    pub fn new(m: usize, k: usize, n: usize) -> Gemm {
        Gemm {
            m,
            k,
            n,
            transpose_left: false,
            transpose_right: false,
            alpha: 1.0,
            beta: 0.0,
            round_bf16: false,
        }
    }

    /// Elements of the stored `L`, `R` and `C` (= `D`).
    pub fn lens(&self) -> [usize; 3] {
        [self.m * self.k, self.k * self.n, self.m * self.n]
    }

    /// Multiply-adds of the product, `m·n·k` (a FLOP count is twice it).
    pub fn macs(&self) -> u64 {
        (self.m * self.n * self.k) as u64
    }

    /// `op(L)[i][j]` of a stored `left`.
    pub fn left_at(&self, left: &[f32], i: usize, j: usize) -> f32 {
        match self.transpose_left {
            false => left[i * self.k + j],
            true => left[j * self.m + i],
        }
    }

    /// `op(R)[i][j]` of a stored `right`.
    pub fn right_at(&self, right: &[f32], i: usize, j: usize) -> f32 {
        match self.transpose_right {
            false => right[i * self.n + j],
            true => right[j * self.k + i],
        }
    }
}

/// The most of `k` one pass of a product sums: a deeper product sums its first
/// `GEMM_PASS_DEPTH` terms into `C = alpha·Σ + beta·D`, then each further slice of `k` as
/// `C ← alpha·Σ + C`, rounding (bf16) after the last. On the device each pass is a
/// dispatch: Mesa's software drivers (lavapipe, llvmpipe's GL) stop every loop of a shader
/// invocation after 65,535 iterations in all, silently, and a pass of the tiled kernel
/// takes about 18 per 16 of `k` (measured: a product summed 58,254 terms, whatever its `k`).
pub const GEMM_PASS_DEPTH: usize = 32768;

/// `x` rounded to the nearest bf16 (ties to even), as an f32.
pub fn round_bf16(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}

/// `C = alpha·op(L)·op(R) + beta·D` for one [`Gemm`]; `addend` is read only when `beta` is
/// not 0. Each `C[i][j]` sums `op(L)[i][k]·op(R)[k][j]` in f32 in order of `k`, then
/// `alpha·sum + beta·D[i][j]` (in that order), then rounds to bf16 when asked; past
/// [`GEMM_PASS_DEPTH`] of `k`, in passes as the device sums.
///
/// # Panics
///
/// When a slice is shorter than the shape says.
pub fn gemm(g: &Gemm, left: &[f32], right: &[f32], addend: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; g.m * g.n];
    for i in 0..g.m {
        for j in 0..g.n {
            let mut c = 0.0f32;
            for pass in 0..g.k.div_ceil(GEMM_PASS_DEPTH).max(1) {
                let depth = pass * GEMM_PASS_DEPTH..((pass + 1) * GEMM_PASS_DEPTH).min(g.k);
                let mut sum = 0.0f32;
                for k in depth {
                    sum += g.left_at(left, i, k) * g.right_at(right, k, j);
                }
                let before = c;
                c = g.alpha * sum;
                match pass {
                    0 if g.beta != 0.0 => c += g.beta * addend[i * g.n + j],
                    0 => {}
                    _ => c += before,
                }
            }
            out[i * g.n + j] = if g.round_bf16 { round_bf16(c) } else { c };
        }
    }
    out
}

/// Each `C[i][j]`'s error bound against [`gemm`] for a device that may fuse or reorder
/// nothing but the multiply-adds of one dot product: `(k + 2·passes)·2⁻²³·(|alpha|·Σ|L||R| +
/// |beta·D|)` (`passes` of [`GEMM_PASS_DEPTH`]), plus a bf16 unit of the result when rounding (a last-bit difference may
/// round the other way).
pub fn gemm_tolerance(g: &Gemm, left: &[f32], right: &[f32], addend: &[f32]) -> Vec<f32> {
    let eps = f32::EPSILON / 2.0;
    let mut out = vec![0.0; g.m * g.n];
    for i in 0..g.m {
        for j in 0..g.n {
            let mut mass = 0.0f32;
            for k in 0..g.k {
                mass += (g.left_at(left, i, k) * g.right_at(right, k, j)).abs();
            }
            let mut size = g.alpha.abs() * mass;
            if g.beta != 0.0 {
                size += (g.beta * addend[i * g.n + j]).abs();
            }
            let rounding = if g.round_bf16 {
                size * 2f32.powi(-7)
            } else {
                0.0
            };
            let passes = g.k.div_ceil(GEMM_PASS_DEPTH).max(1) as f32;
            out[i * g.n + j] =
                (g.k as f32 + 2.0 * passes) * eps * size * 2.0 + rounding + f32::MIN_POSITIVE;
        }
    }
    out
}
