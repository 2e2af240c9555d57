// Per-tensor ratios, one invocation per tensor, after the trust pass: the tensor's chunk
// partials (Σp², Σu²) folded in chunk order, then the rule's tensor_ratio(t, group, sums)
// (trust_ratio.wgsl: Optax's trust ratio, LARS and LAMB; rules/adafactor_ratio.wgsl).
//
// @binding(0) trust_partials (Σp², Σu²) per chunk
// @binding(1) ranges         per tensor [first chunk, chunk count]
// @binding(2) ratios         per tensor (written)
// @binding(3) tensor_group   per tensor, its parameter group
// @binding(4) op             NormOp (num_tensors)
// (the rule's group table at 6)

@group(0) @binding(0) var<storage, read> trust_partials: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> ratios: array<f32>;
@group(0) @binding(3) var<storage, read> tensor_group: array<u32>;
@group(0) @binding(4) var<uniform> op: NormOp;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = group_index(wid, nwg) * WORKGROUP_SIZE + lid;
    if t >= op.num_tensors {
        return;
    }
    let range = ranges[t];
    var sums = vec2<f32>(0.0);
    for (var c = range.x; c < range.x + range.y; c++) {
        sums += trust_partials[c];
    }
    ratios[t] = tensor_ratio(t, tensor_group[t], sums);
}
