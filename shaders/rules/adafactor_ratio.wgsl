// Adafactor's per-tensor step (torch.optim.Adafactor), the trust fold's ratio: from the
// tensor's Σp² and Σu² (adafactor_trust.wgsl), n its elements, t the step,
//   ratio = −max(eps2, ‖p‖/√n)·min(lr, 1/√t) / max(1, ‖u‖/(√n·d))
// in f32 (PyTorch: in Python floats). The twin of alpha / denom in reference::adafactor.
//
// @binding(5) state (the step)  (adafactor_table.wgsl: factor_tensors, groups)

@group(0) @binding(5) var<uniform> state: StepState;

fn tensor_ratio(t: u32, group: u32, sums: vec2<f32>) -> f32 {
    let u = groups[group];
    let root_n = sqrt(f32(factor_tensors[t].numel));
    let rho = min(u.lr, 1.0 / sqrt(f32(state.step)));
    let alpha = max(u.eps2, sqrt(sums.x) / root_n) * rho;
    let denom = max(1.0, sqrt(sums.y) / (root_n * u.d));
    return -alpha / denom;
}
