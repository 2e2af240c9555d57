// Batched matrix multiply: for each product of the table, one workgroup per 64 × 64 tile
// of its result,
//   C = alpha · op(L) · op(R) + beta · D          op(X) = X, or Xᵀ (GEMM_TRANSPOSE_* flags)
// op(L) m × k, op(R) k × n, C and D m × n, every matrix row-major at an element offset in
// one f32 workspace; a transposed operand is read in place. Each C[i][j] is its products
// summed in f32 in order of k (16 at a time through workgroup memory), then alpha · sum
// + beta · D[i][j] (D unread when beta = 0), rounded to bf16 (GEMM_ROUND_BF16) or not:
// the same bits on every run. A dispatch sums k_begin ≤ k < k_end: the host splits a
// deeper k into passes, D = C after the first (software drivers cut long loops short).
// Workgroup w finds its product by binary search of the table's first_tile; past the
// last tile (a 2D grid's spare), it returns. The twin of reference::gemm.
//
// @binding(0) work (read-write: C may be where another product reads, never where this
// one does)  @binding(1) products

@group(0) @binding(0) var<storage, read_write> work: array<f32>;
@group(0) @binding(1) var<storage, read> products: array<MatmulProduct>;

// op(L) and op(R), GEMM_DEPTH × GEMM_TILE each: staged[k][i].
var<workgroup> left_tile: array<f32, 1024>;
var<workgroup> right_tile: array<f32, 1024>;

// op(L)[i][kk], 0 outside the matrix and the pass.
fn left_at(p: MatmulProduct, i: u32, kk: u32) -> f32 {
    if i >= p.m || kk >= p.k_end {
        return 0.0;
    }
    if (p.flags & GEMM_TRANSPOSE_LEFT) != 0u {
        return work[p.left + kk * p.m + i];
    }
    return work[p.left + i * p.k + kk];
}

// op(R)[kk][j], 0 outside the matrix and the pass.
fn right_at(p: MatmulProduct, kk: u32, j: u32) -> f32 {
    if kk >= p.k_end || j >= p.n {
        return 0.0;
    }
    if (p.flags & GEMM_TRANSPOSE_RIGHT) != 0u {
        return work[p.right + j * p.k + kk];
    }
    return work[p.right + kk * p.n + j];
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tile = group_index(wid, nwg);
    let count = arrayLength(&products);
    let last = products[count - 1u];
    if tile >= last.first_tile + last.tiles_n * ((last.m + GEMM_TILE - 1u) / GEMM_TILE) {
        return;
    }
    var lo = 0u;
    var hi = count;
    while hi - lo > 1u {
        let mid = (lo + hi) / 2u;
        if products[mid].first_tile <= tile {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let p = products[lo];
    let local = tile - p.first_tile;
    let row0 = (local / p.tiles_n) * GEMM_TILE;
    let col0 = (local % p.tiles_n) * GEMM_TILE;
    let left_t = (p.flags & GEMM_TRANSPOSE_LEFT) != 0u;
    let right_t = (p.flags & GEMM_TRANSPOSE_RIGHT) != 0u;
    var acc: array<f32, 16>;
    for (var k0 = p.k_begin; k0 < p.k_end; k0 += GEMM_DEPTH) {
        // Stage 16 × 64 of each operand, four elements per invocation, consecutive
        // invocations on consecutive addresses of the stored matrix.
        for (var e = 0u; e < 4u; e++) {
            let s = li + 256u * e;
            var i = s / GEMM_DEPTH;
            var kk = s % GEMM_DEPTH;
            if left_t {
                i = s % GEMM_TILE;
                kk = s / GEMM_TILE;
            }
            left_tile[kk * GEMM_TILE + i] = left_at(p, row0 + i, k0 + kk);
            var j = s % GEMM_TILE;
            var kr = s / GEMM_TILE;
            if right_t {
                j = s / GEMM_DEPTH;
                kr = s % GEMM_DEPTH;
            }
            right_tile[kr * GEMM_TILE + j] = right_at(p, k0 + kr, col0 + j);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < GEMM_DEPTH; kk++) {
            var a: array<f32, 4>;
            for (var r = 0u; r < 4u; r++) {
                a[r] = left_tile[kk * GEMM_TILE + lid.y + 16u * r];
            }
            for (var c = 0u; c < 4u; c++) {
                let b = right_tile[kk * GEMM_TILE + lid.x + 16u * c];
                for (var r = 0u; r < 4u; r++) {
                    acc[r * 4u + c] += a[r] * b;
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let i = row0 + lid.y + 16u * r;
        for (var c = 0u; c < 4u; c++) {
            let j = col0 + lid.x + 16u * c;
            if i < p.m && j < p.n {
                var v = p.alpha * acc[r * 4u + c];
                if p.beta != 0.0 {
                    v += p.beta * work[p.addend + i * p.n + j];
                }
                if (p.flags & GEMM_ROUND_BF16) != 0u {
                    v = bf16_round(v);
                }
                work[p.out + i * p.n + j] = v;
            }
        }
    }
}
