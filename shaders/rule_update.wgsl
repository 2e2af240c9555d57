// Entry of every rule's update kernel (after the rule's body, before elementwise.wgsl):
// vec4 i's block, its parameter group, and the group's row of the table `groups` (declared
// with the rule's uniform struct, generated: src/kernels/shaders.rs), handed to the rule's
//   fn update(i: u32, at: At, block: u32, group: u32, u: <its struct>)
// which reads and writes vec4 i through the access and state parts.

fn apply(i: u32, at: At) {
    let block = block_of(i);
    let group = group_of(block);
    update(i, at, block, group, groups[group]);
}
