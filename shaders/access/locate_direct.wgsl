// Addressing of a slab of clipstep's own (appended to the elementwise kernels that run on
// one): vec4 i of the virtual space is vec4 i of the params, the grads and the states;
// lanes past the slab's end are written back unchanged.

const POOLED: bool = false;

fn locate(i: u32) -> At {
    return At(i, i, lanes_before(i * 4u, slab.len));
}
