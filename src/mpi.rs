//! The sharded norm's combine and data parallelism over MPI (cargo feature `mpi`, through
//! the `mpi` crate over the system's MPI library, e.g. Open MPI). The default build needs
//! no MPI. See [`crate::shard`] for the two phases these sit between.
//!
//! Cost per step: [`all_gather_total_norm`] is one `MPI_Allgather` of
//! [`PARTIAL_WORDS`] u64 (104 bytes) per rank, after phase 1's one
//! readback; [`average_grads`] moves every gradient through the host and is the
//! deterministic reference for data parallelism, not a fast all-reduce.

use ::mpi::traits::CommunicatorCollectives;

use crate::error::{Error, Result};
use crate::shard::{combine, ShardPartial, PARTIAL_WORDS};
use crate::storage::param_set::ParamSet;

/// Elements of the gradients gathered at a time by [`average_grads`] (bounds its host
/// memory to `ranks × 4 MiB`).
const GATHER_ELEMS: usize = 1 << 20;

/// The total norm over every rank of `comm` (collective: every rank calls it with its
/// phase-1 partial): an all-gather of the encoded partials, then
/// [`combine`]. Every rank gets the same bits, and the same bits as
/// one process holding every tensor, whatever order MPI delivers in (the sum is exact).
pub fn all_gather_total_norm<C: CommunicatorCollectives>(
    comm: &C, partial: &ShardPartial,
) -> Result<f32> {
    let ranks = comm.size() as usize;
    let mine = partial.to_words();
    let mut all = vec![0u64; ranks * PARTIAL_WORDS];
    comm.all_gather_into(&mine[..], &mut all[..]);
    let partials = all
        .chunks_exact(PARTIAL_WORDS)
        .map(ShardPartial::from_words)
        .collect::<Result<Vec<_>>>()?;
    combine(&partials)
}

/// Data parallelism: every rank's gradients become the mean over the ranks,
/// `g ← (Σ_r g_r) · (1 / ranks)`, summed in rank order in f32 so every rank holds the same
/// bits (collective; every rank's set must have the same tensors in the same order). A
/// host round trip of every gradient, gathered 2^20 elements at a time.
pub fn average_grads<C: CommunicatorCollectives>(comm: &C, params: &mut ParamSet) -> Result<()> {
    let ranks = comm.size() as usize;
    let mut grads = params.download_grads()?;
    let mut lens = vec![0u64; ranks];
    comm.all_gather_into(&(grads.len() as u64), &mut lens[..]);
    if lens.iter().any(|&n| n != grads.len() as u64) {
        return Err(Error::InvalidShardPartial(format!(
            "average_grads: the ranks' sets hold {lens:?} elements; data parallelism needs the same set on every rank"
        )));
    }
    let inv = 1.0 / ranks as f32;
    let mut gathered = vec![0f32; ranks * GATHER_ELEMS.min(grads.len())];
    for chunk in grads.chunks_mut(GATHER_ELEMS) {
        let all = &mut gathered[..ranks * chunk.len()];
        comm.all_gather_into(&chunk[..], &mut all[..]);
        let len = chunk.len();
        for (i, g) in chunk.iter_mut().enumerate() {
            let sum = (0..ranks).fold(0.0f32, |acc, r| acc + all[r * len + i]);
            *g = sum * inv;
        }
    }
    params.upload_grads(&grads)
}
