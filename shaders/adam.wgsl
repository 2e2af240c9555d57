// Adam / AdamW (torch.optim.Adam, torch.optim.AdamW), one vec4 per invocation, skipped
// when the step state says so:
//   g ← effective_grad(g);  g ← −g if maximize
//   AdamW: p ← p·(1 − lr·wd)        Adam: g ← g + wd·p
//   m ← lerp(m, g, 1 − β1);  v ← β2·v + (1 − β2)·g·g
//   v̂ ← max(v̂, v) with amsgrad, else v
//   p ← p − (lr / bc1) · m / (sqrt(v̂) / sqrt(bc2) + eps)     bc_k = 1 − β_k^step (step state)
// h1 = β1, h2 = β2, h3 = eps; flags: 1 amsgrad, 2 maximize, 4 decoupled weight decay.
//
// @binding(0) params  @binding(1) grads  @binding(2) exp_avg  @binding(3) exp_avg_sq
// @binding(4) max_exp_avg_sq  @binding(5) state  @binding(6) u  @binding(7) slab

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> exp_avg: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> exp_avg_sq: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> max_exp_avg_sq: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> state: StepState;
@group(0) @binding(6) var<uniform> u: Update;
@group(0) @binding(7) var<uniform> slab: Slab;

// A skipped step state leaves parameters and states as they were.
fn enabled() -> bool {
    return state.skipped == 0u;
}

fn apply(i: u32) {
    // Lanes past the slab's end (a caller's range not a multiple of 4) are written back unchanged.
    let live = lanes_before(i * 4u, slab.len);
    let p0 = params[i];
    var p = p0;
    var g = effective_grad(grads[i], u, state);
    if (u.flags & 2u) != 0u {
        g = -g;
    }
    if u.weight_decay != 0.0 {
        if (u.flags & 4u) != 0u {
            p = p * (1.0 - u.lr * u.weight_decay);
        } else {
            g = g + u.weight_decay * p;
        }
    }
    let m0 = exp_avg[i];
    let v0 = exp_avg_sq[i];
    let m = torch_lerp(m0, g, 1.0 - u.h1);
    let v = v0 * u.h2 + (1.0 - u.h2) * g * g;
    exp_avg[i] = select(m0, m, live);
    exp_avg_sq[i] = select(v0, v, live);
    var vhat = v;
    if (u.flags & 1u) != 0u {
        let vmax0 = max_exp_avg_sq[i];
        vhat = max(vmax0, v);
        max_exp_avg_sq[i] = select(vmax0, vhat, live);
    }
    let step_size = u.lr / state.bias_correction1;
    let denom = sqrt(vhat) / sqrt(state.bias_correction2) + u.h3;
    params[i] = select(p0, p - step_size * (m / denom), live);
}
