//! Adaptive gradient clipping in f32, the twin of `shaders/agc.wgsl`, of Optax's
//! `adaptive_grad_clip` and of timm's `adaptive_clip_grad` (PyTorch): what differs between
//! the two is only which elements make a unit.

/// Which elements of a tensor form one unit (one norm, one clip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    /// PyTorch's weights are `[out, in, ...]`: a unit is one index of the first axis (a
    /// contiguous row of `numel / shape[0]` elements); a tensor of rank ≤ 1 is one unit
    /// (timm's `unitwise_norm`).
    Leading,
    /// JAX's weights are `[in, out]`, `[..., in, out]` or `HWIO`: rank 2 and 3 reduce axis 0
    /// (a unit is strided by `numel / shape[0]`), rank 4 and 5 reduce every axis but the
    /// last (strided by `shape[-1]`), and a tensor whose squeezed rank is ≤ 1 is one unit
    /// (Optax's `unitwise_norm`; rank 6 and above are not defined there).
    Trailing,
}

/// A unit: elements `start + k·stride` for `k < count`, relative to the tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// First element.
    pub start: usize,
    /// Distance between its elements.
    pub stride: usize,
    /// Elements.
    pub count: usize,
}

/// The units of a tensor of `shape` under `units`; `None` for a rank Optax does not define.
pub fn units_of(shape: &[usize], units: Units) -> Option<Vec<Unit>> {
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return Some(Vec::new());
    }
    let whole = || {
        vec![Unit {
            start: 0,
            stride: 1,
            count: numel,
        }]
    };
    let strided = |n: usize| {
        (0..n)
            .map(|u| Unit {
                start: u,
                stride: n,
                count: numel / n,
            })
            .collect()
    };
    Some(match units {
        Units::Leading if shape.len() <= 1 => whole(),
        Units::Leading => {
            let len = numel / shape[0];
            (0..shape[0])
                .map(|u| Unit {
                    start: u * len,
                    stride: 1,
                    count: len,
                })
                .collect()
        }
        Units::Trailing if shape.iter().filter(|&&d| d != 1).count() <= 1 => whole(),
        Units::Trailing => match shape.len() {
            2 | 3 => strided(numel / shape[0]),
            4 | 5 => strided(shape[shape.len() - 1]),
            _ => return None,
        },
    })
}

/// Adaptive gradient clipping of one tensor of `shape` in place: per unit,
/// `g ← g · (max / max(‖g_u‖, 1e-6))` unless `‖g_u‖ < max`, with
/// `max = clipping · max(‖p_u‖, eps)`; norms summed in f64 (the shader sums in f32 over a
/// workgroup's tree: within the clip tolerance of this).
/// `None` when `units_of` defines no units for the shape.
pub fn adaptive_clip(
    params: &[f32], grads: &mut [f32], shape: &[usize], clipping: f32, eps: f32, units: Units,
) -> Option<()> {
    for unit in units_of(shape, units)? {
        let at = |k: usize| unit.start + k * unit.stride;
        let (mut g_sum, mut p_sum) = (0.0f64, 0.0f64);
        for k in 0..unit.count {
            g_sum += f64::from(grads[at(k)]).powi(2);
            p_sum += f64::from(params[at(k)]).powi(2);
        }
        let g_norm = g_sum.sqrt() as f32;
        let max_norm = clipping * (p_sum.sqrt() as f32).max(eps);
        if g_norm < max_norm {
            continue;
        }
        let factor = if g_norm.is_nan() {
            g_norm
        } else {
            max_norm / g_norm.max(1e-6)
        };
        for k in 0..unit.count {
            grads[at(k)] *= factor;
        }
    }
    Some(())
}
