// Muon (Jordan et al. 2024; torch.optim.Muon), VEC4_PER_INVOCATION vec4s per invocation,
// after its trust pass (the momentum and X), its fold (each tensor's −adjusted lr) and the
// Newton–Schulz iteration of every matrix (ns_scale.wgsl, matmul.wgsl: O = NS(X));
// skipped when the step state says so:
//   p ← p·(1 − lr·weight_decay) + O[ortho_index(e)]·ratio_t
// The lanes past the tensor's end (its last block's padding) read no O. The twin of
// reference::muon.
//
// @binding(11) ratios  @binding(12) block_tensor  @binding(27) muon_work (O of each
// matrix)  (muon_table.wgsl, update.wgsl); params through the access part, at `at`.

@group(0) @binding(11) var<storage, read> ratios: array<f32>;
@group(0) @binding(12) var<storage, read> block_tensor: array<u32>;
@group(0) @binding(27) var<storage, read> muon_work: array<f32>;

fn update(i: u32, at: At, block: u32, group: u32, u: Muon) {
    let p0 = load_param(at.p);
    let t = block_tensor[i / BLOCK_VEC4S];
    let mt = muon_tensors[t];
    let e0 = slab.base + 4u * i - mt.offset;
    var o = vec4<f32>(0.0);
    for (var lane = 0u; lane < 4u; lane++) {
        if e0 + lane < mt.numel {
            o[lane] = muon_work[mt.out + ortho_index(mt, e0 + lane)];
        }
    }
    let p = exact(p0 * u.decay) + exact(o * ratios[t]);
    store_param(at.p, select(p0, p, at.live));
}
