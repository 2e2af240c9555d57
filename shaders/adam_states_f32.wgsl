// Adam's states in f32: exp_avg, exp_avg_sq and max_exp_avg_sq at bindings 2, 3, 4, by
// slot 0, 1, 2.

@group(0) @binding(2) var<storage, read_write> exp_avg: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> exp_avg_sq: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> max_exp_avg_sq: array<vec4<f32>>;

fn load_state(slot: u32, i: u32) -> vec4<f32> {
    switch slot {
        case 0u: {
            return exp_avg[i];
        }
        case 1u: {
            return exp_avg_sq[i];
        }
        default: {
            return max_exp_avg_sq[i];
        }
    }
}

fn store_state(slot: u32, i: u32, x: vec4<f32>) {
    switch slot {
        case 0u: {
            exp_avg[i] = x;
        }
        case 1u: {
            exp_avg_sq[i] = x;
        }
        default: {
            max_exp_avg_sq[i] = x;
        }
    }
}
