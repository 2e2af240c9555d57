// Adafactor's factored states (src/storage/factored.rs): one set-wide buffer per slot,
// bound whole by every slab, and the row means factor_means.wgsl writes.
//   row_var[row_base + b·R + i]   col_var[col_base + b·C + j]   (a tensor of ≥ 2 dimensions)
//   factor_means[mean_base + b] = max(mean_i row_var[b, i], eps1)

@group(0) @binding(2) var<storage, read_write> row_var: array<f32>;
@group(0) @binding(3) var<storage, read_write> col_var: array<f32>;
@group(0) @binding(22) var<storage, read_write> factor_means: array<f32>;
