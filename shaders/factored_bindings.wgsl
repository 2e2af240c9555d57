// Adafactor's states (src/storage/factored.rs): one set-wide buffer per slot, bound whole
// by every slab, and the row means factor_means.wgsl writes.
//   row_var[row_base + b·R + i]   col_var[col_base + b·C + j]   (a tensor of ≥ 2 dimensions)
//   variance[var_base/4 + k/4]    (a scalar or vector, one value per element, vec4s)
//   factor_means[mean_base + b] = max(mean_i row_var[b, i], eps1)

@group(0) @binding(2) var<storage, read_write> row_var: array<f32>;
@group(0) @binding(3) var<storage, read_write> col_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> variance: array<vec4<f32>>;
@group(0) @binding(22) var<storage, read_write> factor_means: array<f32>;
