// Muon's per-tensor step, the trust fold's ratio: −lr·scale, scale the tensor's
// adjust_lr_fn factor of its shape (MuonTensor::lr_scale: torch.optim.Muon's
// adjusted_lr / lr), in f32 (PyTorch: the product in Python floats).

fn tensor_ratio(t: u32, group: u32, sums: vec2<f32>) -> f32 {
    return -groups[group].lr * muon_tensors[t].lr_scale;
}
