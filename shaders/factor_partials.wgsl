// Adafactor's row and column sums of g², tile by tile (src/storage/factored.rs): workgroup
// w reduces piece w of this slab (the part in this slab of one TILE_ROWS×TILE_COLS tile of
// one matrix) into its PIECE_FLOATS partials:
//   partials[slot·PIECE_FLOATS + r]             = Σ_j g[row0 + r, col0 + j]²   (r < TILE_ROWS)
//   partials[slot·PIECE_FLOATS + TILE_ROWS + j] = Σ_r g[row0 + r, col0 + j]²   (j < TILE_COLS)
// counting only the piece's elements (the others 0), each sum in a fixed order. Matrices
// of a multiple of 4 columns (every row on a vec4: tensors start on 64 elements) read one
// vec4 per invocation and step (tile_vec4: 16 invocations across a tile row, each summing
// its vec4's 4 columns down 8 rows and its row's 4 lanes, then one fold of each row's 16
// and each column's 16 partials); other matrices element by element, four passes of
// FACTOR_SUB_ROWS rows through workgroup memory (tile_scalar). g is the gradient the
// update applies (rule_grad: unscaled, clipped). Skipped with the step. The twin of the
// sums in reference::adafactor.
//
// @binding(19) factor_pieces   this slab's pieces
// @binding(20) factor_tensors  per tensor, where its states live (the rule's table)
// @binding(21) factor_partials PIECE_FLOATS per piece of the set (written)
// Gradients through the access and addressing parts.

@group(0) @binding(19) var<storage, read> factor_pieces: array<FactorPiece>;
@group(0) @binding(21) var<storage, read_write> factor_partials: array<f32>;

// tile_scalar: FACTOR_SUB_ROWS rows of g²; tile_vec4: each row's 16 vec4 sums.
var<workgroup> tile: array<f32, FACTOR_SUB_ROWS * TILE_COLS>;
// tile_vec4: each invocation's column sums (16 row lanes × 16 vec4 columns).
var<workgroup> col_parts: array<vec4<f32>, WORKGROUP_SIZE>;

// g² of element e of tensor `ft` (counted from the tensor's first), read through the slab.
fn grad_sq(ft: FactorTensor, e: u32) -> f32 {
    let rel = ft.offset + e - slab.base;
    let v = rel / 4u;
    let g = rule_grad(locate(v).g, block_of(v))[rel % 4u];
    return g * g;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = group_index(wid, nwg);
    // Uniform per workgroup: every invocation returns, or none does.
    if w >= arrayLength(&factor_pieces) || state.skipped != 0u {
        return;
    }
    let piece = factor_pieces[w];
    let ft = factor_tensors[piece.tensor];
    let base = piece.slot * PIECE_FLOATS;
    // Only matrices have pieces: FACTOR_* (update.wgsl) compile out the kind this slab
    // lacks.
    if FACTOR_MATRICES && (ft.cols % 4u == 0u || !FACTOR_UNALIGNED) {
        tile_vec4(piece, ft, base, lid);
    } else {
        tile_scalar(piece, ft, base, lid);
    }
}

// One vec4 (4 columns) per invocation and row step: invocation (lane_row, q) reads rows
// lane_row + 16k, k < 8, of vec4 column q.
fn tile_vec4(piece: FactorPiece, ft: FactorTensor, base: u32, lid: u32) {
    let q = lid % 16u;
    let lane_row = lid / 16u;
    var col_sum = vec4<f32>(0.0);
    for (var k = 0u; k < TILE_ROWS / 16u; k++) {
        let r = lane_row + 16u * k;
        var x = vec4<f32>(0.0);
        if r < piece.rows && 4u * q < piece.cols {
            let e = (piece.row0 + r) * ft.cols + piece.col0 + 4u * q;
            if e >= piece.lo && e < piece.hi {
                let v = (ft.offset + e - slab.base) / 4u;
                let g = rule_grad(locate(v).g, block_of(v));
                x = g * g;
            }
        }
        col_sum += x;
        tile[r * 16u + q] = (x.x + x.y) + (x.z + x.w);
    }
    col_parts[lid] = col_sum;
    workgroupBarrier();
    if lid < TILE_ROWS {
        var row_sum = 0.0;
        for (var j = 0u; j < 16u; j++) {
            row_sum += tile[lid * 16u + j];
        }
        factor_partials[base + lid] = row_sum;
    } else if lid < TILE_ROWS + 16u {
        let quad = lid - TILE_ROWS;
        var c = vec4<f32>(0.0);
        for (var j = 0u; j < 16u; j++) {
            c += col_parts[j * 16u + quad];
        }
        for (var l = 0u; l < 4u; l++) {
            factor_partials[base + TILE_ROWS + 4u * quad + l] = c[l];
        }
    }
}

// Element by element: FACTOR_SUB_ROWS rows of g² at a time through workgroup memory.
fn tile_scalar(piece: FactorPiece, ft: FactorTensor, base: u32, lid: u32) {
    let col = lid % TILE_COLS;
    let lane_row = lid / TILE_COLS;
    var col_sum = 0.0;
    for (var sweep = 0u; sweep < TILE_ROWS / FACTOR_SUB_ROWS; sweep++) {
        for (var k = 0u; k < FACTOR_SUB_ROWS; k += WORKGROUP_SIZE / TILE_COLS) {
            let r = lane_row + k;
            let tile_row = sweep * FACTOR_SUB_ROWS + r;
            var x = 0.0;
            if tile_row < piece.rows && col < piece.cols {
                let e = (piece.row0 + tile_row) * ft.cols + piece.col0 + col;
                if e >= piece.lo && e < piece.hi {
                    x = grad_sq(ft, e);
                }
            }
            tile[r * TILE_COLS + col] = x;
        }
        workgroupBarrier();
        if lid < TILE_COLS {
            for (var r = 0u; r < FACTOR_SUB_ROWS; r++) {
                col_sum += tile[r * TILE_COLS + lid];
            }
        } else if lid < TILE_COLS + FACTOR_SUB_ROWS {
            let r = lid - TILE_COLS;
            var row_sum = 0.0;
            for (var j = 0u; j < TILE_COLS; j++) {
                row_sum += tile[r * TILE_COLS + j];
            }
            factor_partials[base + sweep * FACTOR_SUB_ROWS + r] = row_sum;
        }
        workgroupBarrier();
    }
    if lid < TILE_COLS {
        factor_partials[base + TILE_ROWS + lid] = col_sum;
    }
}
