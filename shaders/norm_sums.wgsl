// The bindings the per-tensor fold and the finalize share (norm_tensors.wgsl,
// norm_finalize.wgsl, and the two in one workgroup, norm_fold_finalize.wgsl).
//
// @binding(0) tensor_sums one Partial per tensor: written by the fold, read by the finalize
// @binding(3) op          NormOp

@group(0) @binding(0) var<storage, read_write> tensor_sums: array<Partial>;
@group(0) @binding(3) var<uniform> op: NormOp;
