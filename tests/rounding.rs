//! The update kernels' rounding helpers (`shaders/rounding.wgsl`) on this device, against
//! IEEE arithmetic on the host, with the `FUSED_FMA` the Context's probe chose
//! (`src/probe.rs`).

mod common;

/// Every test kernel's bindings (operands a and b, `out` in blocks of n, a zero word) and
/// entry point: the kernel defines `body(n, i)` for vec4 i of n.
const BINDINGS: &str = "
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> zero: u32;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = arrayLength(&a);
    let i = id.x;
    if i < n {
        body(n, i);
    }
}
";

use clipstep::Context;

/// `out[k·n + i]`: div_rn(a, b), sqrt_rn(|a|), WGSL's plain a / b and sqrt(|a|), then
/// a·b + b as written (a driver may fuse it) and with the product's bits xor-ed with a
/// zero read from memory (`exact` in `shaders/update.wgsl`: never fused).
const ROUNDING_TEST_WGSL: &str = "


fn body(n: u32, i: u32) {
    out[i] = div_rn(a[i], b[i]);
    out[n + i] = sqrt_rn(abs(a[i]));
    out[2u * n + i] = a[i] / b[i];
    out[3u * n + i] = sqrt(abs(a[i]));
    out[4u * n + i] = a[i] * b[i] + b[i];
    out[5u * n + i] = bitcast<vec4<f32>>(bitcast<vec4<u32>>(a[i] * b[i]) ^ vec4<u32>(zero)) + b[i];
}
";

/// Operands over 2⁻⁴⁰..2⁴⁰ with random mantissas (a fixed xorshift sequence).
fn operands(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mantissa = (x & 0x7f_ffff) as u32;
            let exponent = 127 - 40 + ((x >> 23) % 81) as u32;
            let sign = ((x >> 40) & 1) as u32;
            f32::from_bits(sign << 31 | exponent << 23 | mantissa)
        })
        .collect()
}

/// Runs `kernel` (after rounding.wgsl, FUSED_FMA set from the probe) over operands a, b
/// of `n` f32 each and a zero word; returns its `blocks` output blocks of `n` each.
fn run_kernel(ctx: &Context, kernel: &str, a: &[f32], b: &[f32], blocks: usize) -> Vec<f32> {
    let (device, queue) = ctx.device_queue().unwrap();
    let n = a.len();
    use wgpu::util::DeviceExt;
    let storage = |data: &[f32]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE,
        })
    };
    let (ba, bb, zero) = (storage(a), storage(b), storage(&[0.0]));
    let bytes = (blocks * n * 4) as u64;
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let source = format!(
        "{}\n{BINDINGS}\n{kernel}",
        include_str!("../shaders/rounding.wgsl")
    );
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let constants = [("FUSED_FMA", f64::from(u8::from(ctx.fused_fma().unwrap())))];
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &constants,
            ..Default::default()
        },
        cache: None,
    });
    let entries: Vec<wgpu::BindGroupEntry> = [&ba, &bb, &out, &zero]
        .iter()
        .enumerate()
        .map(|(i, buffer)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups((n / 4).div_ceil(64) as u32, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&out, 0, &readback, 0, bytes);
    queue.submit([encoder.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let mapped = readback.slice(..).get_mapped_range().unwrap();
    bytemuck::cast_slice(&mapped).to_vec()
}

/// The update kernels' corrected division and square root equal IEEE's on random operands,
/// and a product kept whole is never fused into its sum: on lavapipe (fma not fused, plain
/// operations kept) and on an H100 (fused fma, corrected: 0 of 262,144 off, where the plain
/// operations had 77,917 and 44,029).
#[test]
fn update_divisions_and_square_roots_round_as_the_reference() {
    let ctx = common::ctx();
    if !ctx.is_gpu() {
        return; // the CPU reference divides in Rust
    }
    let fused = ctx.fused_fma().unwrap();
    let n = 1 << 18;
    let (a, b) = (operands(n, 0x9e37_79b9), operands(n, 0x7f4a_7c15));
    let got = run_kernel(&ctx, ROUNDING_TEST_WGSL, &a, &b, 6);
    let count = |k: usize, want: &dyn Fn(usize) -> f32| {
        (0..n)
            .filter(|&i| got[k * n + i].to_bits() != want(i).to_bits())
            .count()
    };
    let div = |i: usize| a[i] / b[i];
    let sqrt = |i: usize| a[i].abs().sqrt();
    let (div_rn, sqrt_rn) = (count(0, &div), count(1, &sqrt));
    let (div_plain, sqrt_plain) = (count(2, &div), count(3, &sqrt));
    let mul_add = |i: usize| a[i] * b[i] + b[i];
    let (fused_sums, exact_sums) = (count(4, &mul_add), count(5, &mul_add));
    eprintln!(
        "{} (fma fused: {fused}), {n} operands: div_rn {div_rn} and sqrt_rn {sqrt_rn} \
         differ from IEEE; plain a / b {div_plain}, sqrt {sqrt_plain}; a·b + b as \
         written {fused_sums}, with the product kept {exact_sums}",
        ctx.describe()
    );
    assert_eq!((div_rn, sqrt_rn), (0, 0), "corrected operations off IEEE");
    assert_eq!(exact_sums, 0, "a product was fused into its sum");
}

/// Division sequences on this device, each counted against IEEE (a measurement for
/// choosing div_rn's; run with --ignored --nocapture).
#[test]
#[ignore]
fn division_variants() {
    let ctx = Context::new().unwrap();
    if !ctx.is_gpu() {
        return;
    }
    let kernel = "

fn opaque(x: vec4<f32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) ^ vec4<u32>(zero));
}


fn body(n: u32, i: u32) {
    let x = a[i];
    let y = b[i];
    let q = x / y;
    out[i] = q;
    let r = fma(-q, y, x);
    out[n + i] = q + r / y;
    let rcp = 1.0 / y;
    out[2u * n + i] = fma(r, rcp, q);
    let q1 = q + r / y;
    let r1 = fma(-q1, y, x);
    out[3u * n + i] = q1 + r1 / y;
    let e = fma(-y, rcp, vec4<f32>(1.0));
    let rcp2 = fma(e, rcp, rcp);
    let q0 = x * rcp2;
    let r0 = fma(-q0, y, x);
    out[4u * n + i] = fma(r0, rcp2, q0);
    let qo = opaque(x / y);
    let ro = opaque(fma(-qo, y, x));
    out[5u * n + i] = qo + opaque(ro / y);
    out[6u * n + i] = r;
}
";
    let n = 1 << 18;
    let (a, b) = (operands(n, 0x9e37_79b9), operands(n, 0x7f4a_7c15));
    let got = run_kernel(&ctx, kernel, &a, &b, 7);
    let off = |k: usize| {
        (0..n)
            .filter(|&i| got[k * n + i].to_bits() != (a[i] / b[i]).to_bits())
            .count()
    };
    // The exact remainder, from f64: how often the device's fma gave it.
    let exact_r = (0..n)
        .filter(|&i| {
            let q = f64::from(got[i]);
            let r = (f64::from(a[i]) - q * f64::from(b[i])) as f32;
            got[6 * n + i].to_bits() == r.to_bits()
        })
        .count();
    eprintln!(
        "{}: off IEEE of {n}: plain {}, q + r/b {}, fma(r, 1/b, q) {}, twice {}, \
             Markstein {}, opaque {}; exact remainders {exact_r}",
        ctx.describe(),
        off(0),
        off(1),
        off(2),
        off(3),
        off(4),
        off(5)
    );
}
