// Norm partials over one slab, of the unscaled gradients u_i = g_i · s (s: 1 / the loss
// scale under a scaler, else op.inv_grad_scale; 1 for a plain norm):
//   partials[chunk.partial] = { Σ_{i∈chunk} |u_i|^p   (max_{i∈chunk} |u_i| for L∞),  NaN/Inf flags of g }
// Unscaling each element before its power, as PyTorch's unscale_ then clip_grad_norm_ does,
// keeps a scaled gradient whose unscaled values are small from overflowing the f32 sum:
// g = 2^126 at a loss scale of 2^126 is u = 1, where Σ g² would be +Inf.
// Workgroup w < slab.num_big reduces large chunk w with all its invocations; the following
// workgroups each reduce several mid chunks (MID_LANES invocations apiece), then several
// small ones (SMALL_LANES apiece), so thousands of small tensors cost a few workgroups.
// Chunks never cross a tensor, so the per-tensor fold reuses these partials.
// Fixed chunk→invocation map, fixed per-invocation order, fixed fold: identical bits every run.
//
// @binding(0) grads    this slab's gradients (grads_f32.wgsl, or grads_half.wgsl for a 16-bit slab)
// @binding(1) chunks   this slab's chunk table, large chunks first (Chunk's fields as a vec4)
// @binding(2) partials one Partial per chunk of the whole set (written)
// @binding(3) op       NormOp (p)
// NORM_KIND (pipeline constant) the norm kind: one pipeline per kind
// ZERO_NANS (pipeline constant) NaN elements add 0 (Optax's zero_nans) but still set FLAG_NAN
// @binding(4) slab     Slab (num_big, num_mid, num_chunks)
// @binding(5) state    StepState before this step's finalize (its loss_scale under a scaler)

@group(0) @binding(1) var<storage, read> chunks: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> partials: array<Partial>;
@group(0) @binding(3) var<uniform> op: NormOp;
@group(0) @binding(4) var<uniform> slab: Slab;
@group(0) @binding(5) var<uniform> state: StepState;

override ZERO_NANS: bool = false;

// Chunk `row` of the table, read as one vec4: on lavapipe every storage load is a loop over
// a SIMD batch's lanes, one for the whole row instead of one per field.
fn chunk_at(row: u32) -> Chunk {
    let c = chunks[row];
    return Chunk(c.x, c.y, c.z, c.w);
}

// FLAG_NAN or FLAG_INF for the largest |g| bit pattern a lane read, else 0.
fn flags_of(top: u32) -> u32 {
    return select(select(0u, FLAG_INF, top == 0x7f800000u), FLAG_NAN, top > 0x7f800000u);
}

// Σ over lanes of |g|^p terms (max for L∞) of chunk elements start + 4·(lane + k·width),
// accumulated per vec4 lane and folded once at the end. Non-finite values are tracked as
// the largest |g| bit pattern: > 0x7f800000 is a NaN, == 0x7f800000 an infinity. Every
// element is checked and masked: the path for NaN zeroing, the p-norm, and a lane whose
// fast sum (reduce_lane) came out non-finite.
fn reduce_lane_checked(start: u32, end: u32, lane: u32, width: u32, s: f32) -> Partial {
    var acc = vec4<f32>(0.0);
    var bits = vec4<u32>(0u);
    // NORM_KIND is a pipeline constant: each pipeline holds one of these loops, and no
    // uniform-selected branch is left for the driver to specialize at dispatch time.
    switch NORM_KIND {
        case NORM_L2: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = select(vec4<f32>(0.0), load_grad(e / 4u), lanes_before(e, end));
                bits = max(bits, bitcast<vec4<u32>>(raw) & vec4<u32>(0x7fffffffu));
                let g = zero_nans_if(raw * s, ZERO_NANS);
                acc += g * g;
            }
        }
        case NORM_INF: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = abs(select(vec4<f32>(0.0), load_grad(e / 4u), lanes_before(e, end)));
                bits = max(bits, bitcast<vec4<u32>>(raw));
                let a = zero_nans_if(raw * s, ZERO_NANS);
                acc = max(acc, a);
            }
        }
        case NORM_P: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = abs(select(vec4<f32>(0.0), load_grad(e / 4u), lanes_before(e, end)));
                bits = max(bits, bitcast<vec4<u32>>(raw));
                let a = zero_nans_if(raw * s, ZERO_NANS);
                acc += select(pow(a, vec4<f32>(op.p)), vec4<f32>(0.0), a == vec4<f32>(0.0));
            }
        }
        default: {
            for (var e = start + lane * 4u; e < end; e += width * 4u) {
                let raw = abs(select(vec4<f32>(0.0), load_grad(e / 4u), lanes_before(e, end)));
                bits = max(bits, bitcast<vec4<u32>>(raw));
                acc += zero_nans_if(raw * s, ZERO_NANS);
            }
        }
    }
    let top = max(max(bits.x, bits.y), max(bits.z, bits.w));
    return Partial(combine(combine(acc.x, acc.y), combine(acc.z, acc.w)), flags_of(top));
}

// The factor s that unscales each gradient: the finalize's inv_scale(), read before the
// finalize of this step updates the loss scale.
fn unscale() -> f32 {
    if op.scaler != 0u {
        return 1.0 / state.loss_scale;
    }
    return op.inv_grad_scale;
}

// Elements of a whole chunk each run of SMALL_LANES invocations reads (see main).
const FULL_SEGMENT: u32 = CHUNK_ELEMS / (WORKGROUP_SIZE / SMALL_LANES);

// g², |g| or the bits of |g| (L∞: for non-negative floats, the bit order is the value order,
// and a NaN's bits are above +Inf's).
fn term(g: vec4<f32>) -> vec4<f32> {
    switch NORM_KIND {
        case NORM_L2: {
            return g * g;
        }
        case NORM_INF: {
            return bitcast<vec4<f32>>(bitcast<vec4<u32>>(g) & vec4<u32>(0x7fffffffu));
        }
        default: {
            return abs(g);
        }
    }
}

fn fold(acc: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    if NORM_KIND == NORM_INF {
        return bitcast<vec4<f32>>(max(bitcast<vec4<u32>>(acc), bitcast<vec4<u32>>(term(g))));
    }
    return acc + term(g);
}

// The same sum for L2, L1 and L∞ without NaN zeroing, at the cost of a load and one or two
// ops per vec4: no masks (the tensor's whole vec4s first, its last partial vec4 masked once),
// no bit tracking (a finite sum of finite terms means no NaN or Inf was read; a non-finite
// one is rare, and the lane re-reads its elements with reduce_lane_checked to tell a NaN
// or an Inf from an overflow), and two loads in flight per iteration. The order is fixed:
// two running sums per lane, added at the end.
fn reduce_lane(start: u32, end: u32, lane: u32, width: u32, s: f32) -> Partial {
    if ZERO_NANS || NORM_KIND == NORM_P {
        return reduce_lane_checked(start, end, lane, width, s);
    }
    let whole = start + (end - start) / 4u * 4u;
    let stride = width * 4u;
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    var e = start + lane * 4u;
    // A whole chunk's segment (the common case): a loop of fixed count, which the driver
    // can unroll (the same loads in the same order as the general loop below).
    if end - start == FULL_SEGMENT && width == SMALL_LANES {
        for (var k = 0u; k < FULL_SEGMENT / (8u * SMALL_LANES); k++) {
            a = fold(a, load_grad(e / 4u) * s);
            b = fold(b, load_grad((e + stride) / 4u) * s);
            e += 2u * stride;
        }
    }
    for (; e + stride < whole; e += 2u * stride) {
        a = fold(a, load_grad(e / 4u) * s);
        b = fold(b, load_grad((e + stride) / 4u) * s);
    }
    if e < whole {
        a = fold(a, load_grad(e / 4u) * s);
        e += stride;
    }
    if e == whole && whole < end {
        a = fold(a, select(vec4<f32>(0.0), load_grad(e / 4u) * s, lanes_before(e, end)));
    }
    if NORM_KIND == NORM_INF {
        let m = max(bitcast<vec4<u32>>(a), bitcast<vec4<u32>>(b));
        let top = max(max(m.x, m.y), max(m.z, m.w));
        return Partial(bitcast<f32>(top), flags_of(top));
    }
    let t = a + b;
    let sum = (t.x + t.y) + (t.z + t.w);
    if !is_finite(sum) {
        return reduce_lane_checked(start, end, lane, width, s);
    }
    return Partial(sum, 0u);
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
    // width and the runs' count are powers of two: masks and shifts, not divisions (a
    // division by a value not known at compile time is 8 scalar divides per SIMD batch on
    // lavapipe).
    let lane = lid & (width - 1u);
    let row = first + (lid >> countTrailingZeros(width));
    let has_row = row < class_end && (width != WORKGROUP_SIZE || lid == lane);
    var part = Partial(0.0, 0u);
    var chunk = Chunk(0u, 0u, 0u, 0u);
    if has_row {
        // Each run of SMALL_LANES lanes (a SIMD batch on CPU drivers, a quarter of a warp)
        // reads its own contiguous segment of the chunk, striding by SMALL_LANES vec4s: every
        // load instruction still uses whole 128-byte lines on a GPU, and on lavapipe, where
        // a batch runs its whole loop before the next batch starts, each batch streams 2 KiB
        // instead of re-reading the whole 64 KiB chunk at a stride. Lanes past the chunk's
        // end belong to padding or the next tensor: masked to 0.
        chunk = chunk_at(row);
        let end = chunk.start + chunk.len;
        let batches = width / SMALL_LANES;
        let seg = ((chunk.len + batches * 4u - 1u) >> countTrailingZeros(batches * 4u)) * 4u;
        let seg_start = min(end, chunk.start + (lane / SMALL_LANES) * seg);
        part = reduce_lane(seg_start, min(end, seg_start + seg), lane % SMALL_LANES, SMALL_LANES, unscale());
    }
    let total = reduce_to_first(lid, part, width);
    if has_row && lane == 0u {
        partials[chunk.partial] = total;
    }
}
