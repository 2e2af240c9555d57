//! Batched matrix products (`shaders/matmul.wgsl`) and the Newton–Schulz normalization
//! (`shaders/ns_scale.wgsl`) over one f32 workspace: each batch's tables are uploaded and
//! their bind groups built once, then every run is one dispatch per batch, whatever the
//! number of matrices in it (and one more per `GEMM_PASS_DEPTH` of its deepest product's
//! `k` past the first).

use crate::device::context::Gpu;
use crate::device::gpu::whole;
use crate::error::{Error, Result};
use crate::kernels::abi::{
    MatmulProduct, NsMatrix, GEMM_ROUND_BF16, GEMM_TILE, GEMM_TRANSPOSE_LEFT, GEMM_TRANSPOSE_RIGHT,
};
use crate::kernels::shaders::Body;
use crate::reference::{Gemm, GEMM_PASS_DEPTH};

/// Where a product's matrices sit in the workspace, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Operands {
    /// `L`.
    pub left: u64,
    /// `R`.
    pub right: u64,
    /// `D` (may be `out`: each result element reads its addend before it writes).
    pub addend: u64,
    /// `C`.
    pub out: u64,
}

/// Tiles of one product's result.
fn tiles(g: &Gemm) -> u64 {
    let t = u64::from(GEMM_TILE);
    (g.m as u64).div_ceil(t) * (g.n as u64).div_ceil(t)
}

/// The table rows of `products` per pass, in order, each with its first tile: pass `j`
/// sums `k` from `j·GEMM_PASS_DEPTH` of every product that deep (the first pass also those
/// of no `k`), later passes adding to `C` (`beta` 1, `D = C`); only the last rounds.
/// Products of no result elements are left out (they have nothing to write).
pub(crate) fn product_rows(products: &[(Gemm, Operands)]) -> Result<Vec<Vec<MatmulProduct>>> {
    let deepest = products.iter().map(|(g, _)| g.k).max().unwrap_or(0);
    (0..deepest.div_ceil(GEMM_PASS_DEPTH).max(1))
        .map(|pass| pass_rows(products, pass))
        .collect()
}

/// The rows of pass `pass` (see [`product_rows`]).
fn pass_rows(products: &[(Gemm, Operands)], pass: usize) -> Result<Vec<MatmulProduct>> {
    let mut rows = Vec::with_capacity(products.len());
    let mut first = 0u64;
    let u32_of = |what: &str, x: u64| {
        u32::try_from(x).map_err(|_| Error::TooLarge {
            what: what.into(),
            size: x,
            limit: u64::from(u32::MAX),
        })
    };
    let begin = pass * GEMM_PASS_DEPTH;
    for (g, at) in products {
        if g.m == 0 || g.n == 0 || (pass > 0 && g.k <= begin) {
            continue;
        }
        let end = (begin + GEMM_PASS_DEPTH).min(g.k);
        let last = end == g.k;
        let bit = |on: bool, flag: u32| if on { flag } else { 0 };
        let flags = bit(g.transpose_left, GEMM_TRANSPOSE_LEFT)
            | bit(g.transpose_right, GEMM_TRANSPOSE_RIGHT)
            | bit(g.round_bf16 && last, GEMM_ROUND_BF16);
        let (addend, beta) = match pass {
            0 => (at.addend, g.beta),
            _ => (at.out, 1.0),
        };
        rows.push(MatmulProduct {
            left: u32_of("a matrix offset", at.left)?,
            right: u32_of("a matrix offset", at.right)?,
            addend: u32_of("a matrix offset", addend)?,
            out: u32_of("a matrix offset", at.out)?,
            m: u32_of("a matrix dimension", g.m as u64)?,
            k: u32_of("a matrix dimension", g.k as u64)?,
            k_begin: begin as u32,
            k_end: end as u32,
            n: u32_of("a matrix dimension", g.n as u64)?,
            flags,
            alpha: g.alpha,
            beta,
            first_tile: u32_of("a batch's tiles", first)?,
            tiles_n: (g.n as u64).div_ceil(u64::from(GEMM_TILE)) as u32,
        });
        first += tiles(g);
    }
    u32_of("a batch's tiles", first)?;
    Ok(rows)
}

/// A workspace of `len` f32s, or [`Error::TooLarge`] past the device's binding size.
pub(crate) fn workspace(gpu: &Gpu, label: &str, len: u64) -> Result<wgpu::Buffer> {
    let bytes = len * 4;
    let limit = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    if bytes > limit {
        return Err(Error::TooLarge {
            what: format!("{label} (bytes)"),
            size: bytes,
            limit,
        });
    }
    Ok(gpu.storage(label, bytes))
}

/// One recorded dispatch: its bind group and workgroups.
pub(crate) struct Dispatch {
    body: Body,
    group: wgpu::BindGroup,
    workgroups: u32,
    /// Keeps the table the bind group reads.
    _table: wgpu::Buffer,
}

impl Dispatch {
    /// The products `rows` over `work`: one workgroup per result tile.
    pub(crate) fn products(gpu: &Gpu, work: &wgpu::Buffer, rows: &[MatmulProduct]) -> Dispatch {
        let workgroups = rows
            .last()
            .map_or(0, |p| p.first_tile + p.tiles_n * p.m.div_ceil(GEMM_TILE));
        Dispatch::new(
            gpu,
            Body::Matmul,
            work,
            bytemuck::cast_slice(rows),
            workgroups,
        )
    }

    /// `matrices` of `work` each divided by its Frobenius norm: one workgroup per matrix.
    pub(crate) fn normalize(gpu: &Gpu, work: &wgpu::Buffer, matrices: &[NsMatrix]) -> Dispatch {
        let n = matrices.len() as u32;
        Dispatch::new(gpu, Body::NsScale, work, bytemuck::cast_slice(matrices), n)
    }

    fn new(gpu: &Gpu, body: Body, work: &wgpu::Buffer, table: &[u8], workgroups: u32) -> Dispatch {
        // An empty table still binds one row's worth of zeros (it is never dispatched).
        let row = std::mem::size_of::<MatmulProduct>().max(std::mem::size_of::<NsMatrix>());
        let buffer = gpu.storage("matmul table", (table.len() as u64).max(row as u64));
        gpu.queue.write_buffer(&buffer, 0, table);
        let group = gpu.bind_group(body, &[whole(work), whole(&buffer)]);
        Dispatch {
            body,
            group,
            workgroups,
            _table: buffer,
        }
    }

    /// Records the dispatch (nothing when it has no workgroups).
    pub(crate) fn encode(&self, gpu: &Gpu, pass: &mut wgpu::ComputePass<'_>) {
        if self.workgroups > 0 {
            gpu.dispatch(pass, self.body, &self.group, self.workgroups);
        }
    }
}

/// One matrix of a Newton–Schulz plan: its stored shape and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NsInput {
    /// Rows of the stored matrix.
    pub rows: usize,
    /// Its columns.
    pub cols: usize,
    /// Its iteration's settings.
    pub ns: crate::reference::NewtonSchulz,
}

/// Newton–Schulz of a batch of matrices over one workspace (`crate::linalg::NewtonSchulzBatch`
/// and Muon's step): per matrix `X`, `X'` (the iteration alternates between them), `A` and
/// `B`; one normalization dispatch, then per iteration `s` three product dispatches over
/// every matrix that iterates at least `s + 1` times (the Gram product `X·Xᵀ`, whose `k`
/// is a matrix's longer side, one more per `GEMM_PASS_DEPTH` of it past the first).
pub(crate) struct NsPlan {
    /// The workspace.
    pub work: wgpu::Buffer,
    /// Per matrix, where its input `X` (wide: `min × max` of its sides) is written.
    pub input: Vec<u64>,
    /// Per matrix, where its result is (`X` after its last iteration).
    pub output: Vec<u64>,
    normalize: Dispatch,
    /// Every product dispatch, in order.
    products: Vec<Dispatch>,
}

impl NsPlan {
    /// The plan of `matrices`. [`Error::TooLarge`] past the device's binding size.
    pub(crate) fn new(gpu: &Gpu, matrices: &[NsInput]) -> Result<NsPlan> {
        let steps = matrices.iter().map(|x| x.ns.steps).max().unwrap_or(0) as usize;
        let mut len = 0u64;
        let (mut input, mut output) = (Vec::new(), Vec::new());
        let mut scales = Vec::new();
        let mut per_step: Vec<[Vec<(Gemm, Operands)>; 3]> =
            (0..steps).map(|_| Default::default()).collect();
        for x in matrices {
            let (m, n) = (x.rows.min(x.cols) as u64, x.rows.max(x.cols) as u64);
            let xs = [len, len + m * n];
            let (a, b) = (len + 2 * m * n, len + 2 * m * n + m * m);
            len += 2 * m * n + 2 * m * m;
            input.push(xs[0]);
            output.push(xs[(x.ns.steps % 2) as usize]);
            scales.push(NsMatrix {
                // Past u32 the workspace is past every device's binding size: `workspace`
                // refuses it below.
                first: u32::try_from(xs[0]).unwrap_or(u32::MAX),
                len: u32::try_from(m * n).unwrap_or(u32::MAX),
                round_bf16: u32::from(x.ns.bf16),
                eps: x.ns.eps,
            });
            let [gram, poly, update] = x.ns.products(m as usize, n as usize);
            for (s, products) in per_step.iter_mut().enumerate().take(x.ns.steps as usize) {
                let (from, to) = (xs[s % 2], xs[(s + 1) % 2]);
                let on = |left, right, addend, out| Operands {
                    left,
                    right,
                    addend,
                    out,
                };
                products[0].push((gram, on(from, from, a, a)));
                products[1].push((poly, on(a, a, a, b)));
                products[2].push((update, on(b, from, from, to)));
            }
        }
        let tables = per_step
            .iter()
            .map(|p| {
                p.iter()
                    .map(|ps| product_rows(ps))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let work = workspace(gpu, "Newton-Schulz workspace", len)?;
        let normalize = Dispatch::normalize(gpu, &work, &scales);
        let products = tables
            .iter()
            .flatten()
            .flatten()
            .map(|rows| Dispatch::products(gpu, &work, rows))
            .collect();
        Ok(NsPlan {
            work,
            input,
            output,
            normalize,
            products,
        })
    }

    /// Dispatches of one run: the normalization and three per iteration (more for a side
    /// past `GEMM_PASS_DEPTH`).
    pub(crate) fn dispatches(&self) -> u32 {
        1 + self.products.len() as u32
    }

    /// Records the normalization and every iteration into `pass`.
    pub(crate) fn encode(&self, gpu: &Gpu, pass: &mut wgpu::ComputePass<'_>) {
        self.normalize.encode(gpu, pass);
        for product in &self.products {
            product.encode(gpu, pass);
        }
    }
}

/// A Muon optimizer's matrices on the device: the Newton–Schulz plan of every tensor (its
/// workspace bound at 27 by the trust pass, which writes each `X`, and the update, which
/// reads each `O`) and the per-tensor table (`MuonTensor`, binding 26).
pub(crate) struct Ortho {
    /// The iteration of every matrix.
    pub plan: NsPlan,
    /// Per tensor, its `MuonTensor`.
    pub tensors: wgpu::Buffer,
}

impl Ortho {
    /// The matrices of `layout`, each with its group's settings (`per_tensor`).
    /// [`Error::InvalidShape`] names a tensor that is not a matrix.
    pub(crate) fn new(
        gpu: &Gpu, layout: &crate::storage::layout::Layout,
        per_tensor: &[(
            crate::reference::NewtonSchulz,
            crate::reference::MuonLrAdjust,
        )],
    ) -> Result<Ortho> {
        use crate::storage::ortho::{matrix_shapes, muon_tensors};
        let shapes = matrix_shapes(layout)?;
        let inputs: Vec<NsInput> = shapes
            .iter()
            .zip(per_tensor)
            .map(|(&(rows, cols), &(ns, _))| NsInput { rows, cols, ns })
            .collect();
        let plan = NsPlan::new(gpu, &inputs)?;
        let adjust: Vec<_> = per_tensor.iter().map(|&(_, a)| a).collect();
        let rows = muon_tensors(layout, &shapes, &plan.input, &plan.output, &adjust);
        let bytes: &[u8] = bytemuck::cast_slice(&rows);
        let tensors = gpu.storage("muon tensors", bytes.len() as u64);
        gpu.queue.write_buffer(&tensors, 0, bytes);
        Ok(Ortho { plan, tensors })
    }
}
