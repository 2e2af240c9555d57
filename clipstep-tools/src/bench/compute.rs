//! The compute-bound rows of `clipstep bench`: Muon's matrix products, measured as
//! GFLOP/s (2 FLOPs per multiply-add), not as a fraction of copy. A square f32 product
//! (`clipstep::linalg::MatmulBatch`) at each of `BenchConfig::matmul_sizes`; then, over a
//! transformer's matrices (`BenchConfig::muon_model`: per layer the attention's four `w × w`
//! projections and the MLP's `4w × w` and `w × 4w`), torch's Newton–Schulz alone
//! (`NewtonSchulzBatch`, bf16, 5 steps) and a whole clipped Muon step, whose rate counts
//! the same products (the rest of the step: norm, momentum and update, is memory-bound).

use serde::Serialize;

use clipstep::linalg::{MatmulBatch, NewtonSchulzBatch};
use clipstep::{
    Context, Gemm, Muon, MuonConfig, NewtonSchulz, Optimizer, ParamSet, Result, StepOptions,
    TensorSpec,
};

use super::Bench;
use crate::harness::sample_data;

/// One compute-bound operation's rate.
#[derive(Clone, Debug, Serialize)]
pub struct ComputeRate {
    /// Operation, e.g. `matmul f32 1024×1024×1024`.
    pub op: String,
    /// Matrices it works on.
    pub matrices: usize,
    /// Floating-point operations of one run: 2 per multiply-add of its products.
    pub flops: u64,
    /// Median time (ms).
    pub median_ms: f64,
    /// Fastest run (ms).
    pub min_ms: f64,
    /// Slowest run (ms).
    pub max_ms: f64,
    /// `flops / median` in GFLOP/s (10^9).
    pub gflop_per_s: f64,
}

/// The matrices of `layers` transformer layers of width `width`, `(rows, cols)`: per layer
/// q, k, v, o (`w × w`), the MLP's up (`4w × w`) and down (`w × 4w`) projections.
pub fn transformer_matrices(layers: usize, width: usize) -> Vec<(usize, usize)> {
    let (w, h) = (width, 4 * width);
    (0..layers)
        .flat_map(|_| [(w, w), (w, w), (w, w), (w, w), (h, w), (w, h)])
        .collect()
}

impl Bench<'_> {
    /// Times `record` as row `op` (`matrices`, `flops` per run): the warm-ups, then runs
    /// as [`Bench::more_runs`] says. `None` when `--only` leaves it out.
    fn rate(
        &mut self, op: &str, matrices: usize, flops: u64,
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Option<ComputeRate>> {
        if self.left_out(op) {
            return Ok(None);
        }
        (self.progress)(&format!("{op} ({matrices} matrices)"));
        for _ in 0..self.config.warmup {
            self.timer.time(record)?;
        }
        let (mut times, mut timed) = (Vec::new(), 0.0);
        while self.more_runs(times.len(), timed) {
            let t = self.timer.time(record)?;
            times.push(t);
            timed += t;
        }
        let t = super::sorted_median(&mut times);
        Ok(Some(ComputeRate {
            op: op.to_string(),
            matrices,
            flops,
            median_ms: t * 1e3,
            min_ms: times[0] * 1e3,
            max_ms: times[times.len() - 1] * 1e3,
            gflop_per_s: flops as f64 / t / 1e9,
        }))
    }

    /// Every compute row: the square products, then Newton–Schulz and a Muon step over
    /// the transformer's matrices.
    pub(super) fn compute_rows(&mut self, ctx: &Context) -> Result<Vec<ComputeRate>> {
        let mut out = Vec::new();
        for &m in &self.config.matmul_sizes.clone() {
            let g = Gemm::new(m, m, m);
            let batch = MatmulBatch::new(ctx, &[g])?;
            let [l, r, c] = g.lens();
            batch.write(
                0,
                &sample_data(l, 1, 1.0),
                &sample_data(r, 2, 1.0),
                &vec![0.0; c],
            )?;
            let op = format!("matmul f32 {m}×{m}×{m}");
            out.extend(self.rate(&op, 1, 2 * batch.macs(), &mut |enc| {
                batch.encode(enc);
                Ok(())
            })?);
        }
        let (layers, width) = self.config.muon_model;
        let shapes = transformer_matrices(layers, width);
        let model = format!("{layers} layers of width {width}");
        let ns = NewtonSchulz::default();
        let batch = NewtonSchulzBatch::new(ctx, &shapes, &ns)?;
        for (i, &(r, c)) in shapes.iter().enumerate() {
            batch.write(i, &sample_data(r * c, 3 + i as u64, 1.0))?;
        }
        let flops = 2 * batch.macs();
        let op = format!("Newton–Schulz (bf16, {} steps), {model}", ns.steps);
        out.extend(self.rate(&op, shapes.len(), flops, &mut |enc| {
            batch.encode(enc);
            Ok(())
        })?);
        drop(batch);
        let specs: Vec<TensorSpec> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(r, c))| TensorSpec::new(format!("w{i}"), [r, c]))
            .collect();
        let mut set = ParamSet::new(ctx, &specs, Default::default())?;
        let n = set.numel() as usize;
        set.upload_params(&sample_data(n, 4, 0.1))?;
        set.upload_grads(&sample_data(n, 5, 1.0))?;
        let mut opt = Muon::new(&set, MuonConfig::default())?;
        let options = StepOptions {
            clip: super::CLIP,
            ..Default::default()
        };
        let op = format!("Muon + clip (step), {model}");
        out.extend(self.rate(&op, shapes.len(), flops, &mut |enc| {
            opt.encode_step(enc, &mut set, &options).map(|_| ())
        })?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::transformer_matrices;

    /// Six matrices per layer, 12·w² elements per layer.
    #[test]
    fn a_layer_has_its_six_matrices() {
        let m = transformer_matrices(2, 8);
        assert_eq!(m.len(), 12);
        assert_eq!(m.iter().map(|(r, c)| r * c).sum::<usize>(), 2 * 12 * 64);
        assert!(m.contains(&(32, 8)) && m.contains(&(8, 32)));
    }
}
