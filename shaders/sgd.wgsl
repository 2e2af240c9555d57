// SGD (torch.optim.SGD), one vec4 per invocation, skipped when the step state says so:
//   g ← effective_grad(g);  g ← −g if maximize;  g ← g + wd·p
//   with momentum μ:  b ← g on the first step, else μ·b + (1 − dampening)·g
//                     g ← g + μ·b (nesterov) or b
//   p ← p − lr·g
// h1 = momentum, h2 = dampening; flags: 1 nesterov, 2 maximize, 4 momentum buffer in use.
//
// @binding(0) params  @binding(1) grads  @binding(2) momentum_buffer
// @binding(5) state  @binding(6) u  @binding(7) slab   (3 and 4 hold Adam's and RMSprop's other states)

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> momentum_buffer: array<vec4<f32>>;
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
    var g = effective_grad(grads[i], u, state);
    if (u.flags & 2u) != 0u {
        g = -g;
    }
    if u.weight_decay != 0.0 {
        g = g + u.weight_decay * p0;
    }
    if (u.flags & 4u) != 0u {
        let b0 = momentum_buffer[i];
        var b = g;
        if state.step != 1u {
            b = u.h1 * b0 + (1.0 - u.h2) * g;
        }
        momentum_buffer[i] = select(b0, b, live);
        if (u.flags & 1u) != 0u {
            g = g + u.h1 * b;
        } else {
            g = b;
        }
    }
    params[i] = select(p0, p0 - u.lr * g, live);
}
