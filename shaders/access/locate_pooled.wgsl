// Addressing of a pool (a caller's buffer holding many tensors at their own offsets),
// appended to the elementwise kernels that run on one: every tensor starts on a
// 64-element block of the virtual space, and the place table gives each block's first
// vec4 among the params and among the grads (bound as windows of the caller's buffers) and
// how many of its elements are the tensor's (places.wgsl). Lanes past a tensor's end are
// written back unchanged, and vec4s of padding are never touched.

const POOLED: bool = true;

fn locate(i: u32) -> At {
    let place = place_of(i / BLOCK_VEC4S);
    let k = i % BLOCK_VEC4S;
    return At(place.params + k, place.grads + k, lanes_before(k * 4u, place.live));
}
