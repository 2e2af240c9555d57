//! Matrix products on the device, the kernels Muon is built on: [`MatmulBatch`] runs many
//! products `C = alpha·op(L)·op(R) + beta·D` ([`Gemm`]) in one dispatch, and
//! [`NewtonSchulzBatch`] orthogonalizes many matrices as `torch.optim.Muon` does
//! ([`NewtonSchulz`]) in `1 + 3·steps` dispatches, whatever their number (a product deeper
//! than [`crate::reference::GEMM_PASS_DEPTH`] takes a dispatch per slice of it: Mesa's
//! software drivers cut longer shader loops short). Both are tiled in
//! workgroup memory (64 × 64 results per workgroup, 16 of the summed dimension at a time),
//! accumulate in f32 in a fixed order (the same bits on every run) and are held to the CPU
//! reference ([`crate::reference::gemm`], [`crate::reference::newton_schulz`]).
//!
//! ```no_run
//! use clipstep::linalg::MatmulBatch;
//! use clipstep::{Context, Gemm};
//! # fn main() -> clipstep::Result<()> {
//! let ctx = Context::new()?;
//! let g = Gemm::new(2, 3, 2);
//! let batch = MatmulBatch::new(&ctx, &[g])?;
//! batch.write(0, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[0.0; 4])?;
//! batch.run()?;
//! assert_eq!(batch.read(0)?, vec![4.0, 5.0, 10.0, 11.0]);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use crate::device::context::{Context, Gpu};
use crate::device::gpu::f32s;
use crate::error::{Error, Result};
use crate::kernels::matmul::{product_rows, workspace, Dispatch, NsInput, NsPlan, Operands};
use crate::reference::{transpose, Gemm, NewtonSchulz};

fn gpu_of(ctx: &Context, what: &'static str) -> Result<Arc<Gpu>> {
    ctx.gpu().cloned().ok_or(Error::NeedsGpu(what))
}

fn index(what: &str, i: usize, len: usize) -> Result<()> {
    match i < len {
        true => Ok(()),
        false => Err(Error::InvalidMatrices(format!(
            "{what} {i} of a batch of {len}"
        ))),
    }
}

fn length(what: String, got: usize, expected: usize) -> Result<()> {
    match got == expected {
        true => Ok(()),
        false => Err(Error::LengthMismatch {
            what,
            expected: expected as u64,
            got: got as u64,
        }),
    }
}

/// A batch of matrix products on the device, each with its own `L`, `R` and `C` in one
/// workspace: [`MatmulBatch::write`] the operands, [`MatmulBatch::run`] (or
/// [`MatmulBatch::encode`]) every product in one dispatch (one more per
/// [`crate::reference::GEMM_PASS_DEPTH`] of the deepest `k` past the first),
/// [`MatmulBatch::read`] a result.
/// `C` is updated in place: `C ← alpha·op(L)·op(R) + beta·C`.
pub struct MatmulBatch {
    gpu: Arc<Gpu>,
    products: Vec<Gemm>,
    at: Vec<Operands>,
    work: wgpu::Buffer,
    /// One dispatch, and one more per `GEMM_PASS_DEPTH` of the deepest `k` past the first.
    passes: Vec<Dispatch>,
}

impl MatmulBatch {
    /// A batch of `products`. [`Error::InvalidMatrices`] for a non-finite `alpha` or
    /// `beta`; [`Error::TooLarge`] when the workspace passes the device's binding size;
    /// [`Error::NeedsGpu`] on the CPU backend.
    pub fn new(ctx: &Context, products: &[Gemm]) -> Result<MatmulBatch> {
        let gpu = gpu_of(ctx, "MatmulBatch")?;
        let mut at = Vec::with_capacity(products.len());
        let mut len = 0u64;
        for (p, g) in products.iter().enumerate() {
            if !(g.alpha.is_finite() && g.beta.is_finite()) {
                return Err(Error::InvalidMatrices(format!(
                    "product {p}: alpha {} and beta {} must be finite",
                    g.alpha, g.beta
                )));
            }
            let [l, r, c] = g.lens().map(|x| x as u64);
            let out = len + l + r;
            at.push(Operands {
                left: len,
                right: len + l,
                addend: out,
                out,
            });
            len = out + c;
        }
        let rows = product_rows(
            &products
                .iter()
                .copied()
                .zip(at.iter().copied())
                .collect::<Vec<_>>(),
        )?;
        let (work, passes) = gpu.scoped(|| {
            let work = workspace(&gpu, "matmul workspace", len)?;
            let passes = rows
                .iter()
                .map(|pass| Dispatch::products(&gpu, &work, pass))
                .collect();
            Ok((work, passes))
        })?;
        Ok(MatmulBatch {
            gpu,
            products: products.to_vec(),
            at,
            work,
            passes,
        })
    }

    /// The products, in order.
    pub fn products(&self) -> &[Gemm] {
        &self.products
    }

    /// Multiply-adds of one run, `Σ m·n·k` (FLOPs: twice it).
    pub fn macs(&self) -> u64 {
        self.products.iter().map(Gemm::macs).sum()
    }

    /// Product `p`'s stored `L`, `R` and the `C` it starts from (its addend, read when
    /// `beta` is not 0), row-major. Queued on the device's queue (lands before the next
    /// run).
    pub fn write(&self, p: usize, left: &[f32], right: &[f32], out: &[f32]) -> Result<()> {
        index("product", p, self.products.len())?;
        let [l, r, c] = self.products[p].lens();
        length(format!("product {p}'s left operand"), left.len(), l)?;
        length(format!("product {p}'s right operand"), right.len(), r)?;
        length(format!("product {p}'s result"), out.len(), c)?;
        let at = self.at[p];
        let queue = &self.gpu.queue;
        for (offset, data) in [(at.left, left), (at.right, right), (at.out, out)] {
            if !data.is_empty() {
                queue.write_buffer(&self.work, offset * 4, bytemuck::cast_slice(data));
            }
        }
        Ok(())
    }

    /// Records every product of the batch: one dispatch per pass.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("clipstep matmul"),
            timestamp_writes: None,
        });
        for dispatch in &self.passes {
            dispatch.encode(&self.gpu, &mut pass);
        }
    }

    /// Runs every product of the batch (one submission; no wait).
    pub fn run(&self) -> Result<()> {
        self.gpu.submit_atomic(|encoder| {
            self.encode(encoder);
            Ok(())
        })
    }

    /// Product `p`'s `C` (waits for the device).
    pub fn read(&self, p: usize) -> Result<Vec<f32>> {
        index("product", p, self.products.len())?;
        let bytes = self.products[p].lens()[2] as u64 * 4;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let data = self
            .gpu
            .read_blocking(&[(&self.work, self.at[p].out * 4, bytes)])?;
        Ok(f32s(&data))
    }
}

/// Muon's orthogonalization of a batch of matrices on the device
/// ([`crate::reference::newton_schulz`]'s twin): per matrix `G` of `rows × cols`, `X = G`
/// (or `Gᵀ` when `rows > cols`), `X ← X / max(‖X‖_F, eps)`, then `steps` times
/// `A = X·Xᵀ; B = c·A·A + b·A; X ← B·X + a·X`, each product of every matrix in one
/// dispatch: `1 + 3·steps` dispatches per run (more for a side past
/// [`crate::reference::GEMM_PASS_DEPTH`]), `2·m²·n + m³` multiply-adds per matrix and
/// step (`m ≤ n` its sides). With [`NewtonSchulz::bf16`] each value is rounded to bf16 as
/// PyTorch's bf16 copy holds it (storage stays f32).
pub struct NewtonSchulzBatch {
    gpu: Arc<Gpu>,
    shapes: Vec<(usize, usize)>,
    ns: NewtonSchulz,
    plan: NsPlan,
}

impl NewtonSchulzBatch {
    /// A batch of matrices of `shapes` (`(rows, cols)`) orthogonalized with `ns`.
    /// [`Error::InvalidHyperparameter`] for PyTorch's refusals (`ns_steps` of 100 or more)
    /// and for a negative or non-finite `eps` or coefficient.
    pub fn new(ctx: &Context, shapes: &[(usize, usize)], ns: &NewtonSchulz) -> Result<Self> {
        validate(ns)?;
        let gpu = gpu_of(ctx, "NewtonSchulzBatch")?;
        let inputs: Vec<NsInput> = shapes
            .iter()
            .map(|&(rows, cols)| NsInput {
                rows,
                cols,
                ns: *ns,
            })
            .collect();
        let plan = gpu.scoped(|| NsPlan::new(&gpu, &inputs))?;
        Ok(NewtonSchulzBatch {
            gpu,
            shapes: shapes.to_vec(),
            ns: *ns,
            plan,
        })
    }

    /// The matrices' shapes, `(rows, cols)`, in order.
    pub fn shapes(&self) -> &[(usize, usize)] {
        &self.shapes
    }

    /// Multiply-adds of one run (FLOPs: twice it).
    pub fn macs(&self) -> u64 {
        let per_step: u64 = self
            .shapes
            .iter()
            .map(|&(r, c)| {
                let (m, n) = (r.min(c) as u64, r.max(c) as u64);
                2 * m * m * n + m * m * m
            })
            .sum();
        per_step * u64::from(self.ns.steps)
    }

    /// Dispatches of one run: `1 + 3·steps`.
    pub fn dispatches(&self) -> u32 {
        self.plan.dispatches()
    }

    /// Matrix `i` (row-major, `rows × cols`), queued on the device's queue.
    pub fn write(&self, i: usize, matrix: &[f32]) -> Result<()> {
        index("matrix", i, self.shapes.len())?;
        let (rows, cols) = self.shapes[i];
        length(
            format!("matrix {i} ({rows} x {cols})"),
            matrix.len(),
            rows * cols,
        )?;
        if matrix.is_empty() {
            return Ok(());
        }
        let x = match rows > cols {
            true => transpose(matrix, rows, cols),
            false => matrix.to_vec(),
        };
        let at = self.plan.input[i] * 4;
        self.gpu
            .queue
            .write_buffer(&self.plan.work, at, bytemuck::cast_slice(&x));
        Ok(())
    }

    /// Records one orthogonalization of every matrix: `1 + 3·steps` dispatches in one
    /// compute pass.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("clipstep newton-schulz"),
            timestamp_writes: None,
        });
        self.plan.encode(&self.gpu, &mut pass);
    }

    /// Runs [`NewtonSchulzBatch::encode`] (one submission; no wait). A run consumes its
    /// inputs: write them again before the next.
    pub fn run(&self) -> Result<()> {
        self.gpu.submit_atomic(|encoder| {
            self.encode(encoder);
            Ok(())
        })
    }

    /// Every matrix's result, `rows × cols` as written (waits for the device; one
    /// readback).
    pub fn read(&self) -> Result<Vec<Vec<f32>>> {
        let ranges: Vec<(&wgpu::Buffer, u64, u64)> = self
            .shapes
            .iter()
            .zip(&self.plan.output)
            .filter(|((r, c), _)| r * c > 0)
            .map(|(&(r, c), &at)| (&self.plan.work, at * 4, (r * c) as u64 * 4))
            .collect();
        let data = match ranges.is_empty() {
            true => Vec::new(),
            false => f32s(&self.gpu.read_blocking(&ranges)?),
        };
        let mut at = 0;
        let mut out = Vec::with_capacity(self.shapes.len());
        for &(rows, cols) in &self.shapes {
            let x = &data[at..at + rows * cols];
            at += rows * cols;
            out.push(match rows > cols {
                true => transpose(x, cols, rows),
                false => x.to_vec(),
            });
        }
        Ok(out)
    }

    /// Writes `matrices`, runs, and reads the results.
    pub fn orthogonalize(&self, matrices: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        length("matrices".into(), matrices.len(), self.shapes.len())?;
        for (i, m) in matrices.iter().enumerate() {
            self.write(i, m)?;
        }
        self.run()?;
        self.read()
    }
}

/// PyTorch's checks of the Newton–Schulz settings, and finite numbers.
pub(crate) fn validate(ns: &NewtonSchulz) -> Result<()> {
    let bad = |name: &'static str, value: f64, rule: &'static str| {
        Err(Error::InvalidHyperparameter {
            optimizer: "Muon",
            name,
            value,
            rule,
        })
    };
    if ns.steps >= 100 {
        return bad("ns_steps", f64::from(ns.steps), "must be less than 100");
    }
    if !(ns.eps.is_finite() && ns.eps >= 0.0) {
        return bad("eps", f64::from(ns.eps), "must be finite and >= 0");
    }
    let (a, b, c) = ns.coefficients;
    for (name, v) in [
        ("ns_coefficients[0]", a),
        ("ns_coefficients[1]", b),
        ("ns_coefficients[2]", c),
    ] {
        if !v.is_finite() {
            return bad(name, f64::from(v), "must be finite");
        }
    }
    Ok(())
}
