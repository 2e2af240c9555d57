// Per-tensor ratios after the trust pass: the tensor's chunk partials (Σp², Σu²) folded,
// then the rule's tensor_ratio(t, group, sums) (trust_ratio.wgsl: Optax's trust ratio,
// LARS and LAMB; rules/adafactor_ratio.wgsl, rules/muon_ratio.wgsl):
//   sums_t = Σ_{c ∈ chunks(t)} trust_partials[c];  ratios[t] = tensor_ratio(t, group_t, sums_t)
// As the norm's per-tensor fold (norm_tensors.wgsl): workgroup w < op.num_big_tensors folds
// big tensor big_tensors[w] with all its invocations (invocation l sums chunks l, l + 256,
// ... in order, then a fixed tree: reduce_vec2.wgsl), the following workgroups give every
// other tensor (at most SERIAL_FOLD_CHUNKS chunks) one invocation that folds it in order.
// A tensor of 16,384 chunks (256M elements) is 64 loads per invocation, not 16,384 in one.
// Fixed order and tree: the same bits every run.
//
// @binding(0) trust_partials (Σp², Σu²) per chunk
// @binding(1) ranges         per tensor [first chunk, chunk count]
// @binding(2) ratios         per tensor (written)
// @binding(3) tensor_group   per tensor, its parameter group
// @binding(4) op             NormOp (num_tensors, num_big_tensors)
// @binding(7) big_tensors    the tensors with more than SERIAL_FOLD_CHUNKS chunks
// (the rule's group table at 6)

@group(0) @binding(0) var<storage, read> trust_partials: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> ratios: array<f32>;
@group(0) @binding(3) var<storage, read> tensor_group: array<u32>;
@group(0) @binding(4) var<uniform> op: NormOp;
@group(0) @binding(7) var<storage, read> big_tensors: array<u32>;

// Σ of trust_partials[first + c] for c = start, start + stride, ... below count.
fn fold_sums(first: u32, count: u32, start: u32, stride: u32) -> vec2<f32> {
    var sums = vec2<f32>(0.0);
    for (var c = start; c < count; c += stride) {
        sums += trust_partials[first + c];
    }
    return sums;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // w is uniform across the workgroup: the big tensors' branch has barriers.
    let w = group_index(wid, nwg);
    if w >= op.num_big_tensors {
        let t = (w - op.num_big_tensors) * WORKGROUP_SIZE + lid;
        if t < op.num_tensors {
            let range = ranges[t];
            if range.y <= SERIAL_FOLD_CHUNKS {
                ratios[t] = tensor_ratio(t, tensor_group[t], fold_sums(range.x, range.y, 0u, 1u));
            }
        }
        return;
    }
    let t = big_tensors[w];
    let range = ranges[t];
    let total = tree_sum2(lid, fold_sums(range.x, range.y, lid, WORKGROUP_SIZE));
    if lid == 0u {
        ratios[t] = tensor_ratio(t, tensor_group[t], total);
    }
}
