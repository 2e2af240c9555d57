//! The launchers: per WGSL family, the buffers and bind groups it needs (built once, when a
//! parameter set or optimizer is made) and the dispatches it records. Each module sits
//! beside the shader it runs:
//!
//! | module      | shaders                                               |
//! |-------------|-------------------------------------------------------|
//! | [`norm`]    | `norm_partials`, `norm_tensors`, `norm_finalize`      |
//! | [`clip`]    | `scale`, `scale_per_tensor`, `clamp`                  |
//! | [`update`]  | the bind-group recipe shared by the update kernels    |
//! | [`cache`]   | bind groups cached per slab by what they bind         |
//! | [`trust`]   | `trust_partials`, `trust_fold` (LARS, LAMB)           |
//! | [`agc`]     | `agc` (adaptive gradient clipping)                    |
//! | [`q8`]      | `q8_update`, `q8_states` (8-bit optimizer states)     |
//! | [`matmul`]  | `matmul`, `ns_scale` (batched products, Newton–Schulz) |
//!
//! Each rule's uniform and shader live in its own file, `src/optim/rules/<rule>.rs`.

pub(crate) mod abi;
pub(crate) mod agc;
pub(crate) mod cache;
pub(crate) mod clip;
pub(crate) mod factor;
pub(crate) mod host;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod q8;
pub(crate) mod shaders;
pub(crate) mod trust;
pub(crate) mod update;

#[cfg(test)]
mod tests {
    use crate::kernels::abi::{AgcOp, GroupSchedule, UnitRow};
    use crate::kernels::abi::{Chunk, DeviceStepState, NormOp, Partial, Shared, Slab};

    use crate::kernels::shaders::{struct_layout, Body, KernelKey};

    /// The f32 source of `body`.
    fn src(body: Body) -> String {
        KernelKey::from(body).source()
    }

    /// Where Rust twin `T` and its WGSL struct in `source` differ: field names, order,
    /// offsets or size. `None` when they agree.
    fn mismatch<T: Shared>(source: &str) -> Option<String> {
        let Some((wgsl, span)) = struct_layout(source, T::WGSL) else {
            return Some(format!("no WGSL struct {}", T::WGSL));
        };
        let rust: Vec<(String, usize)> = T::fields()
            .into_iter()
            .map(|(n, o)| (n.to_string(), o))
            .collect();
        if rust != wgsl {
            return Some(format!(
                "{}: Rust fields {rust:?}, WGSL fields {wgsl:?}",
                T::WGSL
            ));
        }
        let size = std::mem::size_of::<T>();
        (size != span).then(|| format!("{}: Rust size {size}, WGSL size {span}", T::WGSL))
    }

    /// Each struct shared by Rust and WGSL has the same field names, order, offsets and
    /// size on both sides (the rules' uniforms: `src/optim/rules/mod.rs`).
    #[test]
    fn shared_structs_have_the_same_layout_in_rust_and_wgsl() {
        let checks = [
            mismatch::<DeviceStepState>(&src(Body::NormFinalize)),
            mismatch::<NormOp>(&src(Body::NormFinalize)),
            mismatch::<Slab>(&src(Body::NormPartials)),
            mismatch::<Chunk>(&src(Body::NormPartials)),
            mismatch::<Partial>(&src(Body::NormTensors)),
            mismatch::<UnitRow>(&src(Body::Agc)),
            mismatch::<AgcOp>(&src(Body::Agc)),
            mismatch::<GroupSchedule>(&src(Body::NormFinalize)),
        ];
        let found: Vec<String> = checks.into_iter().flatten().collect();
        assert!(found.is_empty(), "{found:#?}");
    }

    /// The check catches two fields of the same type swapped on the WGSL side (the Rust
    /// side is covered the same way: its offsets come from `offset_of!`).
    #[test]
    fn a_reordered_wgsl_field_is_caught() {
        let source = src(Body::NormFinalize);
        let swapped = source
            .replacen("    total_norm: f32,", "    SWAP: f32,", 1)
            .replacen("    clip_coef: f32,", "    total_norm: f32,", 1)
            .replacen("    SWAP: f32,", "    clip_coef: f32,", 1);
        assert_ne!(
            source, swapped,
            "the StepState fields to swap were not found"
        );
        assert!(mismatch::<DeviceStepState>(&swapped).is_some());
    }
}
