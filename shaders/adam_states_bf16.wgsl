// Adam's states in bf16 (half the memory), four to a vec2<u32>, widened exactly and
// written back with stochastic rounding (round to nearest would let a small update vanish
// step after step): state k of element e at step t rounds with
//   rounding_bits4(round_seed ^ STATE_SALT·(k + 1), t, e)      e = slab.base + 4i + lane
// (reference::rounding_bits; STATE_SALT from the prelude; tests/mixed.rs holds the two to
// the same bits). A lane the update leaves alone is written back
// with its own bits (its value is exact in bf16).

@group(0) @binding(2) var<storage, read_write> exp_avg: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> exp_avg_sq: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> max_exp_avg_sq: array<vec2<u32>>;

fn load_state(slot: u32, i: u32) -> vec4<f32> {
    switch slot {
        case 0u: {
            return bf16_widen4(exp_avg[i]);
        }
        case 1u: {
            return bf16_widen4(exp_avg_sq[i]);
        }
        default: {
            return bf16_widen4(max_exp_avg_sq[i]);
        }
    }
}

fn store_state(slot: u32, i: u32, x: vec4<f32>) {
    let seed = state.round_seed ^ (STATE_SALT * (slot + 1u));
    let w = bf16_stochastic4(x, rounding_bits4(seed, state.step, slab.base + i * 4u));
    switch slot {
        case 0u: {
            exp_avg[i] = w;
        }
        case 1u: {
            exp_avg_sq[i] = w;
        }
        default: {
            max_exp_avg_sq[i] = w;
        }
    }
}
