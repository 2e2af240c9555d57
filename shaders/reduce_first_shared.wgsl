// reduce_to_first on a device without subgroups of one fixed size (GL, or a driver whose
// subgroup size varies): the workgroup-memory fold of reduce.wgsl.

fn reduce_to_first(lid: u32, part: Partial, width: u32) -> Partial {
    return reduce_to_first_shared(lid, part, width);
}
