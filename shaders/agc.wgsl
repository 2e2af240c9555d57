// Adaptive gradient clipping (Brock et al. 2021; optax.adaptive_grad_clip, timm's
// adaptive_clip_grad), one workgroup per unit of the slab's unit table; a unit is the
// elements start + k·stride, k < count, of one tensor (a row, a column, or the tensor):
//   ‖g_u‖ = sqrt(Σ g²),  max_u = clipping · max(sqrt(Σ p²), eps)
//   g ← g                                  if ‖g_u‖ < max_u
//   g ← g · (max_u / max(‖g_u‖, 1e-6))     otherwise (NaN for a NaN norm)
// Invocation lid sums elements k ≡ lid (mod WORKGROUP_SIZE), then a fixed tree (reduce_vec2.wgsl): the same
// bits every run (and no invocation loops more than count / WORKGROUP_SIZE times). The
// twin of reference::adaptive_clip (which sums in f64).
//
// @binding(2) units  this slab's unit table (elements of the slab's virtual space)
// @binding(3) agc    AgcOp (clipping, eps)
// params and grads, and how element e is found in them: agc_direct.wgsl (a slab of
// clipstep's own), agc_pooled.wgsl (a caller's pool), agc_shared.wgsl (a pool whose params
// and grads share one buffer).

@group(0) @binding(2) var<storage, read> units: array<Unit>;
@group(0) @binding(3) var<uniform> agc: AgcOp;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = group_index(wid, nwg);
    // Uniform per workgroup: every invocation returns, or none does.
    if id >= arrayLength(&units) {
        return;
    }
    let unit = units[id];
    var acc = vec2<f32>(0.0);
    for (var k = lid; k < unit.count; k += WORKGROUP_SIZE) {
        let e = unit.start + k * unit.stride;
        let g = load_grad(e);
        let p = load_param(e);
        acc += vec2<f32>(g * g, p * p);
    }
    let total = tree_sum2(lid, acc);
    let g_norm = sqrt(total.x);
    let max_norm = agc.clipping * max(sqrt(total.y), agc.eps);
    if g_norm < max_norm {
        return;
    }
    let factor = select(max_norm / max(g_norm, 1e-6), g_norm, is_nan(g_norm));
    for (var k = lid; k < unit.count; k += WORKGROUP_SIZE) {
        let e = unit.start + k * unit.stride;
        store_grad(e, load_grad(e) * factor);
    }
}
