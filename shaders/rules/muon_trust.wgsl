// Muon, trust pass: the momentum, and the Newton–Schulz input X of each matrix
// (torch.optim.Muon), per vec4; skipped (nothing written) when the step is:
//   B ← lerp(B, g, 1 − μ);  U = lerp(g, B, μ) if nesterov, else B;  X[ortho_index(e)] = U
// lerp as ATen's CPU kernel, with fused multiply-adds (reference::lerp_fused). Returns
// (0, 0): Muon's fold computes each tensor's learning rate, not a ratio of norms.
//
// @binding(2) momentum_buffer (state slot 0)  @binding(12) block_tensor
// @binding(27) muon_work (written: each matrix's X)  (muon_table.wgsl, update.wgsl,
// trust_partials.wgsl); gradients through the access part at `at`.

@group(0) @binding(12) var<storage, read> block_tensor: array<u32>;
@group(0) @binding(27) var<storage, read_write> muon_work: array<f32>;

fn lerp_fused(a: vec4<f32>, b: vec4<f32>, w: f32) -> vec4<f32> {
    if abs(w) < 0.5 {
        return fma(vec4<f32>(w), b - a, a);
    }
    return fma(a - b, vec4<f32>(1.0 - w), b);
}

fn trust_terms(i: u32, at: At, live: vec4<bool>) -> vec2<f32> {
    let block = block_of(i);
    let u = groups[group_of(block)];
    let g = rule_grad(at.g, block);
    let b0 = load_state(0u, i);
    let b = select(b0, lerp_fused(b0, g, u.one_minus_momentum), live);
    store_state(0u, i, b);
    var x = b;
    if u.nesterov != 0u {
        x = lerp_fused(g, b, u.momentum);
    }
    let mt = muon_tensors[block_tensor[i / BLOCK_VEC4S]];
    let e0 = slab.base + 4u * i - mt.offset;
    for (var lane = 0u; lane < 4u; lane++) {
        if live[lane] {
            muon_work[mt.x + ortho_index(mt, e0 + lane)] = x[lane];
        }
    }
    return vec2<f32>(0.0);
}
