//! Norms in f64: the twin of `shaders/norm_partials.wgsl` and `shaders/norm_tensors.wgsl`
//! (and of the root in `shaders/norm_finalize.wgsl`). `norm_type` is PyTorch's: 1, 2,
//! `f32::INFINITY` or any finite p > 0.

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
    pub fn combine(self, other: PowerSum, norm_type: f32) -> PowerSum {
        PowerSum {
            value: if norm_type == f32::INFINITY {
                self.value.max(other.value)
            } else {
                self.value + other.value
            },
            has_nan: self.has_nan || other.has_nan,
            has_inf: self.has_inf || other.has_inf,
        }
    }

    /// Whether some element was NaN or ±Inf.
    pub fn nonfinite(self) -> bool {
        self.has_nan || self.has_inf
    }
}

/// `Σ |g_i|^p` (L1: `Σ|g_i|`, L2: `Σ g_i²`, L∞: `max |g_i|`) in f64.
pub fn power_sum(g: &[f32], norm_type: f32) -> PowerSum {
    let mut out = PowerSum::default();
    for &x in g {
        out.has_nan |= x.is_nan();
        out.has_inf |= x.is_infinite();
        let a = f64::from(x.abs());
        out.value = match norm_type {
            1.0 => out.value + a,
            2.0 => out.value + a * a,
            p if p == f32::INFINITY => out.value.max(a),
            p => out.value + a.powf(f64::from(p)),
        };
    }
    out
}

/// The norm from its power sum: `s^(1/p)` (identity for L1 and L∞, `sqrt` for L2);
/// NaN if any input was NaN, +Inf if any was infinite (as IEEE arithmetic gives).
pub fn root(sum: PowerSum, norm_type: f32) -> f64 {
    if sum.has_nan {
        return f64::NAN;
    }
    if sum.has_inf {
        return f64::INFINITY;
    }
    match norm_type {
        1.0 => sum.value,
        2.0 => sum.value.sqrt(),
        p if p == f32::INFINITY => sum.value,
        p => sum.value.powf(1.0 / f64::from(p)),
    }
}

/// The power sum over several tensors.
pub(crate) fn total_power_sum(tensors: &[&[f32]], norm_type: f32) -> PowerSum {
    tensors
        .iter()
        .map(|t| power_sum(t, norm_type))
        .fold(PowerSum::default(), |a, b| a.combine(b, norm_type))
}

/// `‖concat(tensors)‖` (PyTorch `torch.nn.utils.get_total_norm(tensors, norm_type)`).
pub fn global_norm(tensors: &[&[f32]], norm_type: f32) -> f32 {
    root(total_power_sum(tensors, norm_type), norm_type) as f32
}

/// `[‖t‖ for t in tensors]` (`torch.linalg.vector_norm(t, norm_type)` each).
pub fn per_tensor_norms(tensors: &[&[f32]], norm_type: f32) -> Vec<f32> {
    tensors
        .iter()
        .map(|t| root(power_sum(t, norm_type), norm_type) as f32)
        .collect()
}
