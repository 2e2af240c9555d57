
// The second-moment estimate v̂ of vec4 i of this slab, in tensor `ft`: a vector's
// variance, or a matrix's r_i·c_j / mean(r) (PyTorch's (row_var @ col_var) / row mean):
// element e = (b·R + i)·C + j of the tensor. The lanes past the tensor's end read its last
// row's neighbours; the caller masks them. The twin of var_estimate in reference::adafactor.
fn second_moment(i: u32, ft: FactorTensor) -> vec4<f32> {
    let e0 = slab.base + 4u * i - ft.offset;
    if ft.cols == 0u {
        return variance[variance_at(i)];
    }
    // (row of all matrices, column, matrix) of lane 0, then stepped lane by lane.
    var rb = e0 / ft.cols;
    var c = e0 - rb * ft.cols;
    var b = rb / ft.rows;
    var r = rb - b * ft.rows;
    var out: vec4<f32>;
    for (var lane = 0u; lane < 4u; lane++) {
        let product = exact1(row_var[ft.row_base + rb] * col_var[ft.col_base + b * ft.cols + c]);
        out[lane] = div_rn1(product, factor_means[ft.mean_base + b]);
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
    return out;
}
