// Muon's per-tensor table (torch.optim.Muon; see muon.wgsl), shared by its trust pass,
// fold and update, and where an element of a matrix sits in its Newton–Schulz input.
//
// @binding(26) muon_tensors: one MuonTensor per tensor (src/storage/ortho.rs)

@group(0) @binding(26) var<storage, read> muon_tensors: array<MuonTensor>;

// Element e (row-major in the stored rows × cols matrix) in X, the iteration's wide input
// (min × max of the sides): e itself, or its place in Gᵀ for a tall matrix.
fn ortho_index(mt: MuonTensor, e: u32) -> u32 {
    if mt.tall == 0u {
        return e;
    }
    let r = e / mt.cols;
    return (e - r * mt.cols) * mt.rows + r;
}
