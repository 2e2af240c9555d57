// Adafactor's factored second moments, after factor_partials.wgsl: workgroup w folds line w
// (up to 64 rows, or columns, of one matrix) from its pieces' partials in list order, then
// moves each value as PyTorch's row_var.lerp_(row_mean, w):
//   s = Σ_pieces partials[piece·PIECE_FLOATS + part + l];  mean = (√s)² / divisor
//   x ← lerp(x, mean, t^beta2_decay)                     (x in row_var or col_var)
// divisor: the columns for a row, the rows for a column. Skipped with the step. The twin of
// the row and column updates in reference::adafactor.
//
// @binding(2) row_var, @binding(3) col_var (the states part)  @binding(5) state
// @binding(20) factor_tensors (the rule's table)  @binding(21) factor_partials
// @binding(23) factor_lines  @binding(24) line_pieces

@group(0) @binding(5) var<uniform> state: StepState;
@group(0) @binding(21) var<storage, read> factor_partials: array<f32>;
@group(0) @binding(23) var<storage, read> factor_lines: array<FactorLine>;
@group(0) @binding(24) var<storage, read> line_pieces: array<u32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = group_index(wid, nwg);
    if w >= arrayLength(&factor_lines) || state.skipped != 0u {
        return;
    }
    let line = factor_lines[w];
    if lid >= line.count {
        return;
    }
    var s = 0.0;
    for (var k = 0u; k < line.pieces; k++) {
        s += factor_partials[line_pieces[line.start + k] * PIECE_FLOATS + line.part + lid];
    }
    let norm = sqrt(s);
    let mean = (norm * norm) / f32(line.divisor);
    let weight = step_weight(factor_tensors[line.tensor].group);
    let at = line.first + lid;
    if line.is_col != 0u {
        col_var[at] = aten_lerp(col_var[at], mean, weight);
    } else {
        row_var[at] = aten_lerp(row_var[at], mean, weight);
    }
}
