
// Whether `ft` is a vector (its variance whole), with the slab's kinds (FACTOR_*,
// update.wgsl) as constants: a slab of one kind compiles the others' paths out.
fn is_vector(ft: FactorTensor) -> bool {
    return FACTOR_VECTORS && (ft.cols == 0u || !(FACTOR_MATRICES || FACTOR_UNALIGNED));
}

// Whether a matrix `ft` (not a vector) has a multiple of 4 columns: each row on a vec4.
fn is_aligned(ft: FactorTensor) -> bool {
    return FACTOR_MATRICES && (ft.cols % 4u == 0u || !FACTOR_UNALIGNED);
}

// The second-moment estimate v̂ of vec4 i of this slab, in tensor `ft`: a vector's
// variance, or a matrix's r_i·c_j / mean(r) (PyTorch's (row_var @ col_var) / row mean):
// element e = (b·R + i)·C + j of the tensor. The lanes past the tensor's end read its last
// row's neighbours; the caller masks them. The twin of var_estimate in reference::adafactor.
fn second_moment(i: u32, ft: FactorTensor) -> vec4<f32> {
    let e0 = slab.base + 4u * i - ft.offset;
    if is_vector(ft) {
        return variance[variance_at(i)];
    }
    // (row of all matrices, column, matrix) of lane 0, then stepped lane by lane.
    let row_col = divmod(e0, ft.cols);
    var rb = row_col.x;
    var c = row_col.y;
    let batch_row = divmod(rb, ft.rows);
    var b = batch_row.x;
    var r = batch_row.y;
    if is_aligned(ft) {
        // The four lanes in one row (rows of a multiple of 4 columns start on a vec4).
        let k = ft.col_base + b * ft.cols + c;
        let cols = vec4<f32>(col_var[k], col_var[k + 1u], col_var[k + 2u], col_var[k + 3u]);
        let row = vec4<f32>(row_var[ft.row_base + rb]);
        return div_rn(exact(row * cols), vec4<f32>(factor_means[ft.mean_base + b]));
    }
    var rows: vec4<f32>;
    var cols: vec4<f32>;
    var means: vec4<f32>;
    for (var lane = 0u; lane < 4u; lane++) {
        rows[lane] = row_var[ft.row_base + rb];
        cols[lane] = col_var[ft.col_base + b * ft.cols + c];
        means[lane] = factor_means[ft.mean_base + b];
        c += 1u;
        if c == ft.cols {
            c = 0u;
            rb += 1u;
            r += 1u;
            if r == ft.rows {
                r = 0u;
                b += 1u;
            }
        }
    }
    return div_rn(exact(rows * cols), means);
}

// (n / d, n mod d) for 1 ≤ d < 2^30 (a factored dimension: the optimizer refuses larger)
// without an integer division (a CPU driver runs one per lane, tens of cycles each): a quotient from f32 within about n·2^-22 / d + 1, refined once from
// its remainder (small enough to be exact in f32), then corrected by one. The twin of
// `storage::factored::divmod`, which a test holds to `/` and `%`.
fn divmod(n: u32, d: u32) -> vec2<u32> {
    let inv = 1.0 / f32(d);
    var q = u32(f32(n) * inv);
    let r0 = bitcast<i32>(n - q * d);
    q = bitcast<u32>(bitcast<i32>(q) + i32(floor(f32(r0) * inv)));
    var r = bitcast<i32>(n - q * d);
    if r < 0 {
        q -= 1u;
        r += bitcast<i32>(d);
    }
    if r >= bitcast<i32>(d) {
        q += 1u;
        r -= bitcast<i32>(d);
    }
    return vec2<u32>(q, bitcast<u32>(r));
}
