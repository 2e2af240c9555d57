//! WGSL sources and the compute pipelines built from them, once per [`crate::Context`].
//!
//! Each kernel is `prelude + shaders/common.wgsl + shaders/<kernel>.wgsl`; the prelude
//! carries the constants of [`crate::consts`] so Rust and WGSL cannot disagree.

use crate::consts::{
    CHUNK_CLASSES, CLIP_EPS, SERIAL_FOLD_CHUNKS, VEC4_PER_INVOCATION, WORKGROUP_SIZE,
};

const COMMON: &str = include_str!("../shaders/common.wgsl");
/// The entry point shared by elementwise kernels, which define `enabled()` and `apply(i)`.
const ELEMENTWISE: &str = include_str!("../shaders/elementwise.wgsl");
/// The workgroup tree shared by the reduction kernels, which call `tree_reduce`.
const REDUCE: &str = include_str!("../shaders/reduce.wgsl");

/// Every kernel of the crate: name and WGSL body.
pub(crate) const KERNELS: &[(&str, &str)] = &[
    (
        "norm_partials",
        include_str!("../shaders/norm_partials.wgsl"),
    ),
    ("norm_tensors", include_str!("../shaders/norm_tensors.wgsl")),
    (
        "norm_finalize",
        include_str!("../shaders/norm_finalize.wgsl"),
    ),
    ("scale", include_str!("../shaders/scale.wgsl")),
    ("clamp", include_str!("../shaders/clamp.wgsl")),
    ("sgd", include_str!("../shaders/sgd.wgsl")),
    ("adam", include_str!("../shaders/adam.wgsl")),
    ("rmsprop", include_str!("../shaders/rmsprop.wgsl")),
    ("copy", include_str!("../shaders/copy.wgsl")),
    (
        "scale_per_tensor",
        include_str!("../shaders/scale_per_tensor.wgsl"),
    ),
];

/// The full WGSL source of one kernel body.
pub(crate) fn source(body: &str) -> String {
    // Snippets a kernel opts into by what it uses.
    let entry = if body.contains("fn apply(i: u32)") {
        ELEMENTWISE
    } else {
        ""
    };
    let reduce = if body.contains("tree_reduce(") {
        REDUCE
    } else {
        ""
    };
    let (small, mid) = (CHUNK_CLASSES[0].1, CHUNK_CLASSES[1].1);
    format!(
        "const WORKGROUP_SIZE: u32 = {WORKGROUP_SIZE}u;\n\
         const VEC4_PER_INVOCATION: u32 = {VEC4_PER_INVOCATION}u;\n\
         const SMALL_LANES: u32 = {small}u;\n\
         const MID_LANES: u32 = {mid}u;\n\
         const SERIAL_FOLD_CHUNKS: u32 = {SERIAL_FOLD_CHUNKS}u;\n\
         const CLIP_EPS: f32 = {CLIP_EPS:e};\n\
         {COMMON}\n{body}\n{entry}{reduce}"
    )
}

/// The compiled pipelines, indexed like [`KERNELS`].
pub(crate) struct Pipelines {
    pipelines: Vec<wgpu::ComputePipeline>,
}

/// A kernel's place in [`KERNELS`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kernel {
    NormPartials = 0,
    NormTensors = 1,
    NormFinalize = 2,
    Scale = 3,
    Clamp = 4,
    Sgd = 5,
    Adam = 6,
    Rmsprop = 7,
    Copy = 8,
    ScalePerTensor = 9,
}

impl Kernel {
    pub(crate) fn name(self) -> &'static str {
        KERNELS[self as usize].0
    }

    /// The kernel named `name` in [`KERNELS`].
    pub(crate) fn by_name(name: &str) -> Kernel {
        const ALL: [Kernel; 10] = [
            Kernel::NormPartials,
            Kernel::NormTensors,
            Kernel::NormFinalize,
            Kernel::Scale,
            Kernel::Clamp,
            Kernel::Sgd,
            Kernel::Adam,
            Kernel::Rmsprop,
            Kernel::Copy,
            Kernel::ScalePerTensor,
        ];
        *ALL.iter()
            .find(|k| k.name() == name)
            .unwrap_or_else(|| panic!("no kernel named {name}"))
    }
}

impl Pipelines {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let pipelines = KERNELS
            .iter()
            .map(|(name, body)| {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source(body).into()),
                });
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        Pipelines { pipelines }
    }

    pub(crate) fn get(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines[kernel as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel parses and validates with naga, without any device.
    #[test]
    fn every_kernel_validates() {
        for (name, body) in KERNELS {
            let module = naga_check(&source(body));
            assert!(module.is_ok(), "{name}: {}", module.unwrap_err());
        }
    }

    fn naga_check(src: &str) -> Result<(), String> {
        let module = wgpu::naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
        wgpu::naga::valid::Validator::new(
            wgpu::naga::valid::ValidationFlags::all(),
            wgpu::naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
    }
}
