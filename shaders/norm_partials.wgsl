// Norm partials over one slab:
//   partials[chunk.partial] = { Σ_{i∈chunk} |g_i|^p   (max_{i∈chunk} |g_i| for L∞),  NaN/Inf flags }
// Workgroup w < slab.num_big reduces large chunk w with all its invocations; the following
// workgroups each reduce several mid chunks (MID_LANES invocations apiece), then several
// small ones (SMALL_LANES apiece), so thousands of small tensors cost a few workgroups.
// Chunks never cross a tensor, so the per-tensor fold reuses these partials.
// Fixed chunk→invocation map, fixed per-invocation order, fixed tree: identical bits every run.
//
// @binding(0) grads    this slab's gradients, vec4-packed
// @binding(1) chunks   this slab's chunk table, large chunks first
// @binding(2) partials one Partial per chunk of the whole set (written)
// @binding(3) op       NormOp (p)
// NORM_KIND (pipeline constant) the norm kind: one pipeline per kind
// ZERO_NANS (pipeline constant) NaN elements add 0 (Optax's zero_nans) but still set FLAG_NAN
// @binding(4) slab     Slab (num_big, num_mid, num_chunks)

@group(0) @binding(0) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> chunks: array<Chunk>;
@group(0) @binding(2) var<storage, read_write> partials: array<Partial>;
@group(0) @binding(3) var<uniform> op: NormOp;
@group(0) @binding(4) var<uniform> slab: Slab;

override ZERO_NANS: bool = false;

// Σ over lanes of |g|^p terms (max for L∞) of chunk elements start + 4·(lane + k·width),
// accumulated per vec4 lane and folded once at the end. Non-finite values are tracked as
// the largest |g| bit pattern: > 0x7f800000 is a NaN, == 0x7f800000 an infinity.
fn reduce_lane(start: u32, end: u32, lane: u32, width: u32) -> Partial {
    var acc = vec4<f32>(0.0);
    var bits = vec4<u32>(0u);
    // NORM_KIND is a pipeline constant: each pipeline holds one of these loops, and no
    // uniform-selected branch is left for the driver to specialize at dispatch time.
    switch NORM_KIND {
        case NORM_L2: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = select(vec4<f32>(0.0), grads[e / 4u], lanes_before(e, end));
                bits = max(bits, bitcast<vec4<u32>>(raw) & vec4<u32>(0x7fffffffu));
                let g = zero_nans_if(raw, ZERO_NANS);
                acc += g * g;
            }
        }
        case NORM_INF: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = abs(select(vec4<f32>(0.0), grads[e / 4u], lanes_before(e, end)));
                bits = max(bits, bitcast<vec4<u32>>(raw));
                let a = zero_nans_if(raw, ZERO_NANS);
                acc = max(acc, a);
            }
        }
        case NORM_P: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = abs(select(vec4<f32>(0.0), grads[e / 4u], lanes_before(e, end)));
                bits = max(bits, bitcast<vec4<u32>>(raw));
                let a = zero_nans_if(raw, ZERO_NANS);
                acc += select(pow(a, vec4<f32>(op.p)), vec4<f32>(0.0), a == vec4<f32>(0.0));
            }
        }
        default: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = abs(select(vec4<f32>(0.0), grads[e / 4u], lanes_before(e, end)));
                bits = max(bits, bitcast<vec4<u32>>(raw));
                acc += zero_nans_if(raw, ZERO_NANS);
            }
        }
    }
    let top = max(max(bits.x, bits.y), max(bits.z, bits.w));
    let flags = select(select(0u, FLAG_INF, top == 0x7f800000u), FLAG_NAN, top > 0x7f800000u);
    return Partial(combine(combine(acc.x, acc.y), combine(acc.z, acc.w)), flags);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = group_index(wid, nwg);
    let mid_groups = (slab.num_mid + WORKGROUP_SIZE / MID_LANES - 1u) / (WORKGROUP_SIZE / MID_LANES);
    // Invocations per chunk: the same for the whole workgroup, so the tree below is uniform.
    var width = WORKGROUP_SIZE;
    var first = w;
    var class_end = slab.num_big;
    if w >= slab.num_big && w - slab.num_big < mid_groups {
        width = MID_LANES;
        first = slab.num_big + (w - slab.num_big) * (WORKGROUP_SIZE / MID_LANES);
        class_end = slab.num_big + slab.num_mid;
    } else if w >= slab.num_big {
        width = SMALL_LANES;
        first = slab.num_big + slab.num_mid + (w - slab.num_big - mid_groups) * (WORKGROUP_SIZE / SMALL_LANES);
        class_end = slab.num_chunks;
    }
    let lane = lid % width;
    let row = first + lid / width;
    let has_row = row < class_end && (width != WORKGROUP_SIZE || lid == lane);
    var part = Partial(0.0, 0u);
    if has_row {
        // Lanes past the chunk's end belong to padding or the next tensor: masked to 0.
        let chunk = chunks[row];
        part = reduce_lane(chunk.start, chunk.start + chunk.len, lane, width);
    }
    let total = tree_reduce(lid, part, width);
    if has_row && lane == 0u {
        partials[chunks[row].partial] = total;
    }
}
