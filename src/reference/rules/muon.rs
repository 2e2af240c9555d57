//! Muon in f32, the twin of the device's Newton–Schulz (`crate::kernels::matmul`,
//! `shaders/matmul.wgsl`, `shaders/ns_scale.wgsl`) and of `torch.optim.Muon`.

use crate::reference::matmul::{gemm, round_bf16, Gemm};
use crate::reference::TensorStep;

/// The Newton–Schulz orthogonalization's settings (`torch.optim.Muon`'s `ns_coefficients`,
/// `ns_steps` and `eps`), and the precision its products round to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonSchulz {
    /// `(a, b, c)` of `X ← a·X + (b·A + c·A²)·X`, `A = X·Xᵀ`.
    pub coefficients: (f32, f32, f32),
    /// Iterations.
    pub steps: u32,
    /// Floor of the Frobenius norm the input is divided by.
    pub eps: f32,
    /// Round the input, its norm and each product to bf16, as PyTorch (which runs the
    /// iteration on a bf16 copy); `false`: f32 throughout.
    pub bf16: bool,
}

impl Default for NewtonSchulz {
    /// PyTorch's: `(3.4445, −4.7750, 2.0315)`, 5 steps, `eps` 1e-7, bf16.
    fn default() -> Self {
        NewtonSchulz {
            coefficients: (3.4445, -4.7750, 2.0315),
            steps: 5,
            eps: 1e-7,
            bf16: true,
        }
    }
}

impl NewtonSchulz {
    /// The three products of one iteration on an `m × n` `X` (`m ≤ n`):
    /// `A = X·Xᵀ`, `B = c·A·A + b·A`, `X' = B·X + a·X`.
    pub fn products(&self, m: usize, n: usize) -> [Gemm; 3] {
        let (a, b, c) = self.coefficients;
        let round_bf16 = self.bf16;
        let gram = Gemm {
            transpose_right: true,
            round_bf16,
            ..Gemm::new(m, n, m)
        };
        let poly = Gemm {
            alpha: c,
            beta: b,
            round_bf16,
            ..Gemm::new(m, m, m)
        };
        let update = Gemm {
            beta: a,
            round_bf16,
            ..Gemm::new(m, m, n)
        };
        [gram, poly, update]
    }

    fn round(&self, x: f32) -> f32 {
        if self.bf16 {
            round_bf16(x)
        } else {
            x
        }
    }
}

/// `Xᵀ` of a row-major `rows × cols` matrix.
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}

/// `X / max(‖X‖_F, eps)` in place, the norm summed in f64 and rounded (to f32, and to bf16
/// with `ns.bf16`), each quotient rounded likewise.
pub fn normalize_frobenius(x: &mut [f32], ns: &NewtonSchulz) {
    let sum: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let norm = ns.round(sum.sqrt() as f32).max(ns.round(ns.eps));
    for v in x.iter_mut() {
        *v = ns.round(*v / norm);
    }
}

/// `torch.optim.Muon`'s `_zeropower_via_newtonschulz` of a row-major `rows × cols` matrix:
/// `X = G` (or `Gᵀ` when `rows > cols`, so `X` is wide), `X ← X / max(‖X‖_F, eps)`, then
/// `ns.steps` times `A = X·Xᵀ; B = b·A + c·A·A; X ← a·X + B·X`, transposed back. Each
/// product is [`gemm`]'s; with `ns.bf16` the input, its norm and every product are rounded
/// to bf16 as PyTorch's bf16 copy holds them.
pub fn newton_schulz(g: &[f32], rows: usize, cols: usize, ns: &NewtonSchulz) -> Vec<f32> {
    let tall = rows > cols;
    let (m, n) = if tall { (cols, rows) } else { (rows, cols) };
    let mut x: Vec<f32> = g.iter().map(|&v| ns.round(v)).collect();
    if tall {
        x = transpose(&x, rows, cols);
    }
    normalize_frobenius(&mut x, ns);
    let [gram, poly, update] = ns.products(m, n);
    for _ in 0..ns.steps {
        let a = gemm(&gram, &x, &x, &[]);
        let b = gemm(&poly, &a, &a, &a);
        x = gemm(&update, &b, &x, &x);
    }
    if tall {
        x = transpose(&x, m, n);
    }
    x
}

/// ATen's CPU `lerp` on f32, with fused multiply-adds: `fma(w, b − a, a)` for `|w| < 0.5`,
/// else `fma(−(b − a), 1 − w, b)`.
pub fn lerp_fused(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        w.mul_add(b - a, a)
    } else {
        (-(b - a)).mul_add(1.0 - w, b)
    }
}

/// `torch.optim.Muon`'s `adjust_lr_fn`: how the learning rate scales with a `rows × cols`
/// matrix's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum MuonLrAdjust {
    /// `"original"` (Keller Jordan's, PyTorch's default): `lr·sqrt(max(1, rows / cols))`.
    #[default]
    Original,
    /// `"match_rms_adamw"` (Moonshot's): `lr·0.2·sqrt(max(rows, cols))`.
    MatchRmsAdamW,
    /// `"spectral_unclamped"` (Bernstein's): `lr·sqrt(rows / cols)`.
    SpectralUnclamped,
}

impl MuonLrAdjust {
    /// The adjusted learning rate of a `rows × cols` matrix, in f64 as Python computes it.
    pub fn adjusted_lr(self, lr: f64, rows: usize, cols: usize) -> f64 {
        let (a, b) = (rows as f64, cols as f64);
        let ratio = match self {
            MuonLrAdjust::Original => (a / b).max(1.0).sqrt(),
            MuonLrAdjust::MatchRmsAdamW => 0.2 * a.max(b).sqrt(),
            MuonLrAdjust::SpectralUnclamped => (a / b).sqrt(),
        };
        lr * ratio
    }
}

/// One `torch.optim.Muon` step over one `rows × cols` matrix (`t.shape`), its state slot 0
/// being `momentum_buffer`:
/// ```text
/// B ← lerp(B, g, 1 − μ)                 (buf.lerp_(grad, 1 − momentum))
/// U ← lerp(g, B, μ) if nesterov, else B  (grad.lerp(buf, momentum))
/// O ← newton_schulz(U)
/// p ← p·(1 − lr·weight_decay) − adjusted_lr·O
/// ```
/// with ATen's CPU `lerp` ([`lerp_fused`]); `1 − μ` and `1 − lr·weight_decay` in f64, rounded
/// once, as Python computes them.
///
/// # Panics
///
/// When `t.shape` is not two dimensions of `t.params.len()` elements.
pub fn muon(
    t: TensorStep<'_>, lr: f64, weight_decay: f64, momentum: f64, nesterov: bool,
    ns: &NewtonSchulz, adjust: MuonLrAdjust,
) {
    let &[rows, cols] = t.shape else {
        panic!("Muon steps matrices, not shape {:?}", t.shape)
    };
    let (params, grads, [buf]) = t.kept("Muon");
    assert_eq!(params.len(), rows * cols, "shape {:?}", [rows, cols]);
    let (mu, one_minus_mu) = (momentum as f32, (1.0 - momentum) as f32);
    let mut update = vec![0.0; params.len()];
    for i in 0..params.len() {
        let g = grads[i];
        buf[i] = lerp_fused(buf[i], g, one_minus_mu);
        update[i] = if nesterov {
            lerp_fused(g, buf[i], mu)
        } else {
            buf[i]
        };
    }
    let ortho = newton_schulz(&update, rows, cols, ns);
    let decay = (1.0 - lr * weight_decay) as f32;
    let neg_lr = -adjust.adjusted_lr(lr, rows, cols) as f32;
    for (p, o) in params.iter_mut().zip(ortho) {
        *p = *p * decay + neg_lr * o;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::reference::golden::f32s;

    fn fixtures() -> Value {
        let text = include_str!("../../../fixtures/muon.json");
        serde_json::from_str(text).expect("fixtures/muon.json parses")
    }

    fn shape(v: &Value) -> (usize, usize) {
        let dims: Vec<usize> = v
            .as_array()
            .expect("a shape")
            .iter()
            .map(|d| d.as_u64().expect("a dimension") as usize)
            .collect();
        (dims[0], dims[1])
    }

    /// The largest `|got − want|` over a tensor, relative to its largest `|want|`.
    fn worst(got: &[f32], want: &[f32]) -> f64 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0f64, |m, &w| m.max(f64::from(w).abs()));
        let err = got.iter().zip(want).fold(0f64, |m, (&g, &w)| {
            m.max((f64::from(g) - f64::from(w)).abs())
        });
        err / scale.max(f64::MIN_POSITIVE)
    }

    /// `_zeropower_via_newtonschulz` of `fixtures/muon.json`: f32 within 5e-6 of the
    /// largest element (PyTorch's BLAS sums in another order; measured 1.6e-6), bf16 within
    /// 2⁻¹² (bit for bit but one case, 4.3e-5: a last-bit difference in a product flips a
    /// bf16 rounding).
    #[test]
    fn newton_schulz_as_pytorch() {
        for case in fixtures()["newton_schulz"].as_array().expect("cases") {
            let (rows, cols) = shape(&case["shape"]);
            let bf16 = case["precision"] == "bf16";
            let ns = NewtonSchulz {
                bf16,
                ..NewtonSchulz::default()
            };
            let got = newton_schulz(&f32s(&case["input"]), rows, cols, &ns);
            let err = worst(&got, &f32s(&case["output"]));
            let tol = if bf16 { 2f64.powi(-12) } else { 5e-6 };
            assert!(err <= tol, "{rows}x{cols} {}: {err:e}", case["precision"]);
        }
    }

    /// Each step of `fixtures/muon.json` from PyTorch's parameters and momentum before it:
    /// the momentum within 1 ulp, the parameters within 1e-6 of the tensor's largest value
    /// in either precision (measured: 1.2e-7 at worst; with bf16 rounding emulated per
    /// product the reference rounds where PyTorch does).
    #[test]
    fn steps_as_pytorch() {
        for case in fixtures()["steps"].as_array().expect("cases") {
            let kwargs = &case["kwargs"];
            let f = |key: &str, default: f64| kwargs[key].as_f64().unwrap_or(default);
            let coefficients = match kwargs["ns_coefficients"].as_array() {
                Some(c) => (
                    c[0].as_f64().unwrap() as f32,
                    c[1].as_f64().unwrap() as f32,
                    c[2].as_f64().unwrap() as f32,
                ),
                None => NewtonSchulz::default().coefficients,
            };
            let bf16 = case["precision"] == "bf16";
            let ns = NewtonSchulz {
                coefficients,
                steps: f("ns_steps", 5.0) as u32,
                eps: f("eps", 1e-7) as f32,
                bf16,
            };
            let adjust = match kwargs["adjust_lr_fn"].as_str() {
                None | Some("original") => MuonLrAdjust::Original,
                Some("match_rms_adamw") => MuonLrAdjust::MatchRmsAdamW,
                Some("spectral_unclamped") => MuonLrAdjust::SpectralUnclamped,
                Some(other) => panic!("adjust_lr_fn {other}"),
            };
            let (lr, wd, mu) = (f("lr", 1e-3), f("weight_decay", 0.1), f("momentum", 0.95));
            let nesterov = kwargs["nesterov"].as_bool().unwrap_or(true);
            let shapes: Vec<(usize, usize)> = case["shapes"]
                .as_array()
                .unwrap()
                .iter()
                .map(shape)
                .collect();
            let mut params: Vec<Vec<f32>> = case["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(f32s)
                .collect();
            let mut bufs: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
            let mut worst_param = 0f64;
            for (s, step) in case["steps"].as_array().unwrap().iter().enumerate() {
                for (t, &(rows, cols)) in shapes.iter().enumerate() {
                    let grads = f32s(&step["grads"][t]);
                    muon(
                        TensorStep {
                            params: &mut params[t],
                            grads: &grads,
                            shape: &[rows, cols],
                            states: [Some(&mut bufs[t]), None, None],
                        },
                        lr,
                        wd,
                        mu,
                        nesterov,
                        &ns,
                        adjust,
                    );
                    let what = format!("{} {} step {s} tensor {t}", kwargs, case["precision"]);
                    let want_buf = f32s(&step["momentum"][t]);
                    for (i, (&g, &w)) in bufs[t].iter().zip(&want_buf).enumerate() {
                        assert!(crate::reference::ulps(g, w) <= 1, "{what}: momentum[{i}]");
                    }
                    let want = f32s(&step["params"][t]);
                    let err = worst(&params[t], &want);
                    worst_param = worst_param.max(err);
                    assert!(err <= 1e-6, "{what}: parameters off by {err:e}");
                    // The next step starts from PyTorch's.
                    params[t] = want;
                    bufs[t] = want_buf;
                }
            }
            eprintln!("{kwargs} {}: worst {worst_param:e}", case["precision"]);
        }
    }
}
