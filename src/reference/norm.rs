//! Norms in f64: the twin of `shaders/norm_partials.wgsl` and `shaders/norm_tensors.wgsl`.

use crate::Norm;

/// `Σ |g_i|^p` (or `max |g_i|` for L∞) over one or more slices, in f64, with flags
/// for NaN and ±Inf inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PowerSum {
    /// The sum (or max); meaningless when a flag is set.
    pub value: f64,
    /// Some element was NaN.
    pub has_nan: bool,
    /// Some element was ±Inf.
    pub has_inf: bool,
}

impl PowerSum {
    /// Folds `other` into `self` (`+` for sums, `max` for L∞).
    pub fn combine(self, other: PowerSum, norm: Norm) -> PowerSum {
        PowerSum {
            value: match norm {
                Norm::Inf => self.value.max(other.value),
                _ => self.value + other.value,
            },
            has_nan: self.has_nan || other.has_nan,
            has_inf: self.has_inf || other.has_inf,
        }
    }
}

/// `Σ |g_i|^p` (L1: `Σ|g_i|`, L2: `Σ g_i²`, L∞: `max |g_i|`) in f64.
pub fn power_sum(g: &[f32], norm: Norm) -> PowerSum {
    let mut out = PowerSum::default();
    for &x in g {
        out.has_nan |= x.is_nan();
        out.has_inf |= x.is_infinite();
        let a = f64::from(x.abs());
        out.value = match norm {
            Norm::L1 => out.value + a,
            Norm::L2 => out.value + a * a,
            Norm::Inf => out.value.max(a),
            Norm::P(p) => out.value + a.powf(f64::from(p)),
        };
    }
    out
}

/// The norm from its power sum: `s^(1/p)` (identity for L1 and L∞, `sqrt` for L2);
/// NaN if any input was NaN, +Inf if any was infinite (as IEEE arithmetic gives).
pub fn root(sum: PowerSum, norm: Norm) -> f64 {
    if sum.has_nan {
        return f64::NAN;
    }
    if sum.has_inf {
        return f64::INFINITY;
    }
    match norm {
        Norm::L1 | Norm::Inf => sum.value,
        Norm::L2 => sum.value.sqrt(),
        Norm::P(p) => sum.value.powf(1.0 / f64::from(p)),
    }
}

/// `‖concat(tensors)‖` (PyTorch `torch.nn.utils.get_total_norm`).
pub fn global_norm(tensors: &[&[f32]], norm: Norm) -> f32 {
    let total = tensors
        .iter()
        .map(|t| power_sum(t, norm))
        .fold(PowerSum::default(), |a, b| a.combine(b, norm));
    root(total, norm) as f32
}

/// `[‖t‖ for t in tensors]`.
pub fn per_tensor_norms(tensors: &[&[f32]], norm: Norm) -> Vec<f32> {
    tensors
        .iter()
        .map(|t| root(power_sum(t, norm), norm) as f32)
        .collect()
}
