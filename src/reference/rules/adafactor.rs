//! Adafactor in f32, the twin of `shaders/rules/adafactor*.wgsl` and
//! `shaders/factor_*.wgsl`, and of PyTorch's `_single_tensor_adafactor` (`foreach=False`)
//! on CPU.
//!
//! A tensor of two or more dimensions `[…, R, C]` is `B = ∏…` matrices of `R×C`, each with
//! a factored second moment: a row vector (`row_var`, `B·R`) and a column vector
//! (`col_var`, `B·C`). A tensor of fewer dimensions keeps it whole (`variance`).

use crate::reference::TensorStep;

/// The `(batch, rows, columns)` a shape factors into: `Some` for two or more dimensions
/// (PyTorch's `grad.dim() > 1`), `None` for a scalar or a vector.
pub fn factored_dims(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape {
        [batch @ .., rows, cols] => Some((batch.iter().product(), *rows, *cols)),
        _ => None,
    }
}

/// The second moment of one tensor, as PyTorch's `state` holds it.
pub enum AdafactorState<'a> {
    /// A tensor of two or more dimensions: `row_var` (`B·R`, PyTorch's `[…, R, 1]`) and
    /// `col_var` (`B·C`, PyTorch's `[…, 1, C]`).
    Factored {
        /// The rows' running mean of `g²`.
        row_var: &'a mut [f32],
        /// The columns' running mean of `g²`.
        col_var: &'a mut [f32],
    },
    /// A scalar or vector: `variance`, one per element.
    Full(&'a mut [f32]),
}

/// The hyperparameters of one Adafactor step (`torch.optim.Adafactor`'s, with `eps1`
/// resolved: PyTorch's `None` is `f32::EPSILON`).
#[derive(Clone, Copy, Debug)]
pub struct AdafactorStep {
    /// Learning rate.
    pub lr: f64,
    /// `β2_t = 1 − t^beta2_decay` is the second moment's decay.
    pub beta2_decay: f64,
    /// Floor of the second moment and of the row means (squared for the former).
    pub eps1: f64,
    /// Floor of the parameters' RMS in the relative step size.
    pub eps2: f64,
    /// Clipping threshold of the update's RMS.
    pub d: f64,
    /// Decoupled weight decay (`p ← p·(1 − lr·weight_decay)`).
    pub weight_decay: f64,
    /// Ascend instead.
    pub maximize: bool,
}

/// ATen's `lerp` on f32: `a + w·(b − a)` for `|w| < 0.5`, else `b − (b − a)·(1 − w)`.
pub fn aten_lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

/// `Σ x²` accumulated in f64.
fn sum_sq(x: impl Iterator<Item = f32>) -> f64 {
    x.map(|v| f64::from(v) * f64::from(v)).sum()
}

/// A mean of squares as PyTorch computes it from a norm: `(√Σx²)² / n`, each in f32.
fn mean_from_norm(sum_sq: f64, n: usize) -> f32 {
    let norm = sum_sq.sqrt() as f32;
    norm * norm / n as f32
}

/// The step's per-tensor scalars, from the step count `t` (1 on the first step):
/// `(t^beta2_decay, min(lr, 1/√t))` in f64, the first rounded to f32 (the lerp weight).
pub fn adafactor_schedule(step: u32, beta2_decay: f64, lr: f64) -> (f32, f64) {
    let t = f64::from(step);
    (t.powf(beta2_decay) as f32, lr.min(1.0 / t.sqrt()))
}

/// One `torch.optim.Adafactor` step over one tensor of `shape` (`step` = 1 on the first):
/// ```text
/// g ← −g if maximize;  w = t^beta2_decay;  ρ = min(lr, 1/√t)
/// α = max(eps2, ‖p‖/√n)·ρ;  p ← p·(1 − lr·weight_decay)
/// factored:  r ← lerp(r, ‖g_row‖²/C, w);  c ← lerp(c, ‖g_col‖²/R, w)
///            v̂[i,j] = r_i·c_j / max(mean(r), eps1)
/// otherwise: v ← lerp(v, g², w);  v̂ = v
/// u = g·rsqrt(max(v̂, eps1²));  p ← p + u·(−α / max(1, ‖u‖/(√n·d)))
/// ```
/// Norms and means accumulate in f64 (PyTorch's in f32, in its own order); every
/// elementwise operation is PyTorch's, in f32 and in its order; the scalars in f64.
pub fn adafactor(
    params: &mut [f32], grads: &[f32], state: AdafactorState<'_>, shape: &[usize], step: u32,
    h: &AdafactorStep,
) {
    let n = params.len();
    if n == 0 {
        return;
    }
    let sign = if h.maximize { -1.0f32 } else { 1.0 };
    let g = |i: usize| sign * grads[i];
    let (w, rho) = adafactor_schedule(step, h.beta2_decay, h.lr);
    let root_n = (n as f64).sqrt();
    let p_norm = f64::from(sum_sq(params.iter().copied()).sqrt() as f32);
    let alpha = h.eps2.max(p_norm / root_n) * rho;
    if h.weight_decay != 0.0 {
        let decay = (1.0 - h.lr * h.weight_decay) as f32;
        params.iter_mut().for_each(|p| *p *= decay);
    }
    let floor = (h.eps1 * h.eps1) as f32;
    let var_estimate: Vec<f32> = match state {
        AdafactorState::Factored { row_var, col_var } => {
            let (batch, rows, cols) = factored_dims(shape).expect("a factored shape");
            let mut out = vec![0.0f32; n];
            for b in 0..batch {
                let base = b * rows * cols;
                for r in 0..rows {
                    let row = sum_sq((0..cols).map(|c| g(base + r * cols + c)));
                    let k = b * rows + r;
                    row_var[k] = aten_lerp(row_var[k], mean_from_norm(row, cols), w);
                }
                for c in 0..cols {
                    let col = sum_sq((0..rows).map(|r| g(base + r * cols + c)));
                    let k = b * cols + c;
                    col_var[k] = aten_lerp(col_var[k], mean_from_norm(col, rows), w);
                }
                let rows_of = &row_var[b * rows..(b + 1) * rows];
                let mean = rows_of.iter().map(|&v| f64::from(v)).sum::<f64>() / rows as f64;
                let mean = (mean as f32).max(h.eps1 as f32);
                for r in 0..rows {
                    for c in 0..cols {
                        let v = row_var[b * rows + r] * col_var[b * cols + c];
                        out[base + r * cols + c] = v / mean;
                    }
                }
            }
            out
        }
        AdafactorState::Full(variance) => {
            for (i, v) in variance.iter_mut().enumerate() {
                *v = aten_lerp(*v, g(i) * g(i), w);
            }
            variance.to_vec()
        }
    };
    let update: Vec<f32> = (0..n)
        .map(|i| 1.0 / var_estimate[i].max(floor).sqrt() * g(i))
        .collect();
    let u_norm = f64::from(sum_sq(update.iter().copied()).sqrt() as f32);
    let denom = 1f64.max(u_norm / (root_n * h.d));
    let scale = (-alpha / denom) as f32;
    for (p, u) in params.iter_mut().zip(update) {
        *p += u * scale;
    }
}

/// [`adafactor`] on the per-element images an optimizer's states are held in (slot 0
/// `row_var`, slot 1 `col_var`, slot 2 `variance`, each one value per element): a
/// factored tensor's element `(b, i, j)` holds `row_var[b, i]` in slot 0 and
/// `col_var[b, j]` in slot 1 (slot 2 unused, 0); a vector's holds its `variance` in slot 2
/// (slots 0 and 1 unused, 0).
pub fn adafactor_broadcast(t: TensorStep<'_>, shape: &[usize], step: u32, h: &AdafactorStep) {
    let (params, grads, [rows_image, cols_image, variance]) = t.kept("Adafactor");
    match factored_dims(shape) {
        Some((batch, rows, cols)) if !params.is_empty() => {
            let mut row_var = compact_rows(rows_image, batch, rows, cols);
            let mut col_var = compact_cols(cols_image, batch, rows, cols);
            let state = AdafactorState::Factored {
                row_var: &mut row_var,
                col_var: &mut col_var,
            };
            adafactor(params, grads, state, shape, step, h);
            broadcast_rows(&row_var, rows_image, cols);
            broadcast_cols(&col_var, cols_image, batch, rows, cols);
        }
        Some(_) => {}
        None => adafactor(
            params,
            grads,
            AdafactorState::Full(variance),
            shape,
            step,
            h,
        ),
    }
}

/// `row_var` (`B·R`) from its per-element image: each row's first element.
pub fn compact_rows(image: &[f32], batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    (0..batch * rows).map(|k| image[k * cols]).collect()
}

/// `col_var` (`B·C`) from its per-element image: each matrix's first row.
pub fn compact_cols(image: &[f32], batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    (0..batch * cols)
        .map(|k| image[(k / cols) * rows * cols + k % cols])
        .collect()
}

/// The per-element image of `row_var`: element `(b, i, j)` holds `row_var[b·R + i]`.
pub fn broadcast_rows(row_var: &[f32], image: &mut [f32], cols: usize) {
    for (k, row) in image.chunks_mut(cols).enumerate() {
        row.fill(row_var[k]);
    }
}

/// The per-element image of `col_var`: element `(b, i, j)` holds `col_var[b·C + j]`.
pub fn broadcast_cols(col_var: &[f32], image: &mut [f32], batch: usize, rows: usize, cols: usize) {
    for b in 0..batch {
        for r in 0..rows {
            let at = (b * rows + r) * cols;
            image[at..at + cols].copy_from_slice(&col_var[b * cols..(b + 1) * cols]);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::reference::golden::f32s;

    /// `fixtures/adafactor.json`'s hyperparameters of a case (PyTorch's defaults where
    /// absent; `eps1` `None` is f32's epsilon).
    fn hyperparameters(kwargs: &Value) -> AdafactorStep {
        let f = |key: &str, default: f64| kwargs[key].as_f64().unwrap_or(default);
        let eps = &kwargs["eps"];
        AdafactorStep {
            lr: f("lr", 1e-2),
            beta2_decay: f("beta2_decay", -0.8),
            eps1: eps[0].as_f64().unwrap_or(f64::from(f32::EPSILON)),
            eps2: eps[1].as_f64().unwrap_or(1e-3),
            d: f("d", 1.0),
            weight_decay: f("weight_decay", 0.0),
            maximize: kwargs["maximize"].as_bool().unwrap_or(false),
        }
    }

    /// Within `tol` of PyTorch relative to each value, plus 1e-6 of the tensor's largest
    /// magnitude (an element that is a near-cancellation of order-one terms keeps their
    /// rounding).
    fn assert_close(got: &[f32], want: &[f32], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0f64, |m, &w| m.max(f64::from(w).abs()));
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let err = (f64::from(g) - f64::from(w)).abs();
            let bound = tol * f64::from(w).abs() + 1e-6 * scale;
            assert!(err <= bound, "{what}[{i}]: reference {g:e}, PyTorch {w:e}");
        }
    }

    /// Twelve steps of each configuration of `fixtures/adafactor.json`, every tensor kind,
    /// from PyTorch's initial parameters and gradients: parameters and every state within
    /// 1e-5 relative (plus 1e-6 of the tensor's largest value) of PyTorch's after every
    /// step (its f32 norms and means accumulate in another order than the reference's f64
    /// ones).
    #[test]
    fn steps_as_pytorch() {
        let text = include_str!("../../../fixtures/adafactor.json");
        let fixtures: Value = serde_json::from_str(text).expect("fixtures/adafactor.json parses");
        for (c, case) in fixtures["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .enumerate()
        {
            let h = hyperparameters(&case["kwargs"]);
            let shapes: Vec<Vec<usize>> = case["shapes"]
                .as_array()
                .expect("shapes")
                .iter()
                .map(|s| {
                    s.as_array()
                        .expect("a shape")
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect()
                })
                .collect();
            let mut params: Vec<Vec<f32>> = case["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(f32s)
                .collect();
            let mut states: Vec<[Vec<f32>; 2]> = shapes
                .iter()
                .zip(&params)
                .map(|(shape, p)| match factored_dims(shape) {
                    Some((b, r, c)) => [vec![0.0; b * r], vec![0.0; b * c]],
                    None => [vec![0.0; p.len()], Vec::new()],
                })
                .collect();
            for (s, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
                for t in 0..shapes.len() {
                    let grads = f32s(&step["grads"][t]);
                    let [a, b] = &mut states[t];
                    let state = match factored_dims(&shapes[t]) {
                        Some(_) => AdafactorState::Factored {
                            row_var: a,
                            col_var: b,
                        },
                        None => AdafactorState::Full(a),
                    };
                    adafactor(&mut params[t], &grads, state, &shapes[t], s as u32 + 1, &h);
                    let what = format!("case {c} step {} tensor {t}", s + 1);
                    assert_close(&params[t], &f32s(&step["params"][t]), 1e-5, &what);
                    let want = &step["states"][t];
                    match factored_dims(&shapes[t]) {
                        Some(_) => {
                            assert_close(
                                &states[t][0],
                                &f32s(&want["row_var"]),
                                1e-5,
                                &format!("{what} row_var"),
                            );
                            assert_close(
                                &states[t][1],
                                &f32s(&want["col_var"]),
                                1e-5,
                                &format!("{what} col_var"),
                            );
                        }
                        None => assert_close(
                            &states[t][0],
                            &f32s(&want["variance"]),
                            1e-5,
                            &format!("{what} variance"),
                        ),
                    }
                }
            }
        }
    }

    /// The per-element images round trip: compact → broadcast → compact is the identity,
    /// and the broadcast step equals the compact one.
    #[test]
    fn broadcast_images_round_trip() {
        let (batch, rows, cols) = (2, 3, 5);
        let row_var: Vec<f32> = (0..batch * rows).map(|k| k as f32 + 0.5).collect();
        let col_var: Vec<f32> = (0..batch * cols).map(|k| 10.0 + k as f32).collect();
        let n = batch * rows * cols;
        let (mut ri, mut ci) = (vec![0.0; n], vec![0.0; n]);
        broadcast_rows(&row_var, &mut ri, cols);
        broadcast_cols(&col_var, &mut ci, batch, rows, cols);
        assert_eq!(ri[(rows + 2) * cols + 4], row_var[rows + 2]);
        assert_eq!(ci[(rows + 2) * cols + 4], col_var[cols + 4]);
        assert_eq!(compact_rows(&ri, batch, rows, cols), row_var);
        assert_eq!(compact_cols(&ci, batch, rows, cols), col_var);
    }
}
