//! Muon's matrices on a device, pure bookkeeping: each tensor's shape as a matrix (a rule
//! of matrices refuses any other), and its `MuonTensor` row: where its Newton–Schulz input
//! and result sit in the plan's workspace (`crate::kernels::matmul::NsPlan`), and its
//! learning-rate factor.

use crate::error::{Error, Result};
use crate::kernels::abi::MuonTensor;
use crate::reference::MuonLrAdjust;
use crate::storage::layout::Layout;

/// Each tensor's `(rows, cols)`; [`Error::InvalidShape`] names the first tensor that is
/// not a matrix (PyTorch's Muon refuses it too).
pub(crate) fn matrix_shapes(layout: &Layout) -> Result<Vec<(usize, usize)>> {
    layout
        .tensors
        .iter()
        .map(|info| match info.shape[..] {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::InvalidShape {
                tensor: info.name.clone(),
                shape: info.shape.clone(),
                why: "Muon steps 2-D matrices only: give the other tensors (biases, norms, \
                      embeddings' vectors) to AdamW, in a set of their own",
            }),
        })
        .collect()
}

/// Each tensor's row: its place in the set (`layout`), its shape (`shapes`), its input and
/// result in the workspace (`input`, `output`, in elements), its `adjust`.
pub(crate) fn muon_tensors(
    layout: &Layout, shapes: &[(usize, usize)], input: &[u64], output: &[u64],
    adjust: &[MuonLrAdjust],
) -> Vec<MuonTensor> {
    layout
        .tensors
        .iter()
        .enumerate()
        .map(|(t, info)| {
            let (rows, cols) = shapes[t];
            // Python's ratio, rounded once (a 0-sized matrix has no elements to step).
            let scale = match rows * cols {
                0 => 0.0,
                _ => adjust[t].adjusted_lr(1.0, rows, cols) as f32,
            };
            MuonTensor {
                offset: info.offset as u32,
                numel: info.numel as u32,
                rows: rows as u32,
                cols: cols as u32,
                tall: u32::from(rows > cols),
                x: input[t] as u32,
                out: output[t] as u32,
                lr_scale: scale,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::layout::{Layout, TensorSpec};

    /// A vector, a scalar or a batch of matrices is refused by name; matrices are kept in
    /// order, and a tall one is marked.
    #[test]
    fn only_matrices_pass() {
        let specs = |shapes: &[&[usize]]| -> Vec<TensorSpec> {
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| TensorSpec::new(format!("t{i}"), s.to_vec()))
                .collect()
        };
        for bad in [&[5usize][..], &[], &[2, 3, 4]] {
            let layout = Layout::new(&specs(&[&[2, 3], bad]), &[], &[], 1 << 20).unwrap();
            let e = matrix_shapes(&layout).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidShape { tensor, .. } if tensor == "t1"),
                "{e}"
            );
        }
        let layout = Layout::new(&specs(&[&[2, 3], &[7, 1]]), &[], &[], 1 << 20).unwrap();
        let shapes = matrix_shapes(&layout).unwrap();
        assert_eq!(shapes, vec![(2, 3), (7, 1)]);
        let adjust = [MuonLrAdjust::Original; 2];
        let rows = muon_tensors(&layout, &shapes, &[0, 20], &[6, 27], &adjust);
        assert_eq!((rows[0].tall, rows[1].tall), (0, 1));
        assert_eq!((rows[1].x, rows[1].out, rows[1].numel), (20, 27, 7));
        assert_eq!(rows[1].lr_scale, 7f32.sqrt());
    }
}
