//! Optimizer checkpoints, keyed by tensor name: what a checkpoint holds ([`Checkpoint`]),
//! the file format ([`safetensors`](self::tensors), version 4; version 3 still read), the version-2 files of
//! earlier builds (still read), how a load treats tensors missing from the file or absent
//! from the set ([`LoadOptions`]), and atomic writes.
//!
//! Version 4 is a [safetensors](https://huggingface.co/docs/safetensors) file: every state
//! of every tensor under PyTorch's state names (`<tensor>.exp_avg`, `<tensor>.exp_avg_sq`,
//! `<tensor>.max_exp_avg_sq`, `<tensor>.momentum_buffer`, `<tensor>.square_avg`,
//! `<tensor>.grad_avg`) in the tensor's shape as f32, `<tensor>.step` (f32 scalar) for the
//! optimizers whose PyTorch state keeps one, and the optimizer, its config (JSON), the step
//! count, the tensor list and a CRC-32 of the whole file (header included) as metadata:
//! a flipped bit anywhere is [`Error::Checkpoint`](crate::Error::Checkpoint). Python's `safetensors`
//! package reads it; `scripts/checkpoint_torch.py` converts it to and from a PyTorch
//! optimizer `state_dict`.

mod tensors;
mod v2;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The checkpoint format version this build writes (it also reads versions 3 and 2).
pub const CHECKPOINT_VERSION: u32 = 4;

/// Everything a checkpoint holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checkpoint {
    /// The optimizer's name (`SGD`, `Adam`, ...).
    pub optimizer: String,
    /// The first parameter group's config as JSON (what version 2 held).
    pub config: String,
    /// Every parameter group (tensors, config, norm and clip flags) as JSON; `None` in
    /// version-2 files.
    pub groups: Option<String>,
    /// Steps taken.
    pub step: u32,
    /// The dynamic loss scaler, its settings and state, as JSON (`None`: no scaler, or a
    /// file written before scalers).
    pub scaler: Option<String>,
    /// Whether `<tensor>.step` entries are written (PyTorch's state holds a step for this
    /// optimizer).
    pub torch_step: bool,
    /// Name and shape of every tensor, in the saved set's order.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// Per state the optimizer keeps, in its order: the state's name and each tensor's
    /// values, in `tensors` order; `None` for a tensor whose group does not keep it (Adam's
    /// `max_exp_avg_sq` outside the amsgrad groups, as in PyTorch's state dict).
    pub states: Vec<(String, Vec<Option<Vec<f32>>>)>,
}

/// What a checkpoint is for, read without an optimizer: which optimizer wrote it, after how
/// many steps, and the tensors and states it holds, so a caller can check a file against a
/// model before the first step (the optimizer's own load checks it again).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointSummary {
    /// The optimizer's name (`SGD`, `AdamW`, ...: [`crate::RuleDeclaration::NAME`]).
    pub optimizer: String,
    /// Steps taken.
    pub step: u32,
    /// Name and shape of every tensor, in the saved set's order.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// The states kept per tensor (`exp_avg`, ...), in the optimizer's order.
    pub states: Vec<String>,
}

impl CheckpointSummary {
    /// Parses and checks `bytes` (a checkpoint of version 4, 3 or 2, as
    /// [`CheckpointIo::load`](crate::CheckpointIo::load) does): [`Error::Checkpoint`] for
    /// another format, a corrupted or truncated file.
    pub fn read(bytes: &[u8]) -> Result<CheckpointSummary> {
        let c = Checkpoint::decode(bytes)?;
        Ok(CheckpointSummary {
            optimizer: c.optimizer,
            step: c.step,
            tensors: c.tensors,
            states: c.states.into_iter().map(|(name, _)| name).collect(),
        })
    }
}

/// What [`CheckpointIo::load_with`](crate::CheckpointIo::load_with) does with tensors the set
/// has and the checkpoint does not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingTensors {
    /// [`Error::Checkpoint`] naming them (the default).
    #[default]
    Error,
    /// Fresh (zero) state for them, as for a tensor the optimizer has not seen: a layer
    /// added since the checkpoint was saved.
    FreshState,
}

/// What [`CheckpointIo::load_with`](crate::CheckpointIo::load_with) does with tensors the
/// checkpoint has and the set does not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnexpectedTensors {
    /// [`Error::Checkpoint`] naming them (the default).
    #[default]
    Error,
    /// Skip them: a layer removed since the checkpoint was saved.
    Ignore,
}

/// How a checkpoint is matched to a parameter set: by tensor name, whatever the order; a
/// tensor present on both sides must have the same shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Tensors of the set absent from the checkpoint.
    pub missing: MissingTensors,
    /// Tensors of the checkpoint absent from the set.
    pub unexpected: UnexpectedTensors,
}

pub(crate) fn bad(msg: impl Into<String>) -> Error {
    Error::Checkpoint(msg.into())
}

impl Checkpoint {
    /// The file's bytes (format version 4).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        tensors::encode(self)
    }

    /// Parses and checks a file of version 4, 3 or 2: [`Error::Checkpoint`] for another
    /// format or version, a corrupted or truncated file, or contents that disagree with
    /// themselves. What the file must agree with (optimizer, set, states) is checked by the
    /// optimizer before it writes anything.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint> {
        if v2::is_v2(bytes) {
            v2::decode(bytes)
        } else {
            tensors::decode(bytes)
        }
    }
}

/// Elements of `shape` (the layout's product), `None` past `usize`.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    crate::storage::layout::shape_numel(shape).and_then(|n| usize::try_from(n).ok())
}

/// Writes `bytes` to `path` so that `path` holds the old contents or the new ones, never
/// a part: a temporary file beside it, written and synced, then renamed over it (and the
/// directory synced, where the platform allows). On error the temporary file is removed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("checkpoint path {} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}-{unique}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename itself reaches the disk with the directory (not possible everywhere).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    mod fuzz {
        use super::*;
        use crate::{Adam, AdamConfig, Context, Optimizer, StepOptions, TensorSpec};
        use proptest::prelude::*;

        /// The set every crafted checkpoint is loaded into: 3 + 4 elements.
        fn target() -> (crate::ParamSet, Adam) {
            let ctx = Context::cpu();
            let specs = [TensorSpec::new("a", [3]), TensorSpec::new("b", [2, 2])];
            let set = ctx.param_set(&specs).unwrap();
            let opt = Adam::new(&set, AdamConfig::default()).unwrap();
            (set, opt)
        }

        fn dims() -> impl Strategy<Value = usize> {
            prop_oneof![
                Just(0usize),
                Just(2),
                Just(3),
                Just(4),
                Just(usize::MAX),
                Just(1 << 32),
                any::<usize>()
            ]
        }

        fn config() -> impl Strategy<Value = String> {
            let adam = (
                prop_oneof![Just(1e-3), Just(0.0), Just(-1.0), Just(1e308), any::<f64>()],
                prop_oneof![Just(0.9), Just(1.0), Just(-0.5), any::<f64>()],
                prop_oneof![Just(1e-8), Just(0.0), any::<f64>()],
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(lr, beta1, eps, amsgrad, maximize)| {
                    serde_json::to_string(&AdamConfig {
                        lr,
                        betas: (beta1, 0.999),
                        eps,
                        amsgrad,
                        maximize,
                        ..Default::default()
                    })
                    .unwrap_or_default()
                });
            let default = serde_json::to_string(&AdamConfig::default()).unwrap();
            prop_oneof![4 => Just(default), 4 => adam, 1 => Just("{".to_string()), 1 => ".{0,40}"]
        }

        fn state() -> impl Strategy<Value = (String, Vec<Option<Vec<f32>>>)> {
            let name = prop_oneof![
                Just("exp_avg".to_string()),
                Just("exp_avg_sq".to_string()),
                Just("max_exp_avg_sq".to_string()),
                "[a-z_]{0,12}"
            ];
            let part = prop::option::weighted(0.8, prop::collection::vec(any::<f32>(), 0..5));
            (name, prop::collection::vec(part, 0..4))
        }

        fn checkpoint() -> impl Strategy<Value = Checkpoint> {
            let shapes = prop_oneof![
                Just(vec![
                    ("a".to_string(), vec![3]),
                    ("b".to_string(), vec![2, 2])
                ]),
                prop::collection::vec(("[ab]{1,2}", prop::collection::vec(dims(), 0..3)), 0..4),
            ];
            (
                prop_oneof![Just("Adam".to_string()), Just("SGD".to_string()), ".{0,8}"],
                config(),
                prop_oneof![
                    Just(0u32),
                    Just(1),
                    Just(u32::MAX),
                    Just(u32::MAX - 1),
                    any::<u32>()
                ],
                shapes,
                prop::collection::vec(state(), 0..4),
                any::<bool>(),
            )
                .prop_map(|(optimizer, config, step, tensors, states, torch_step)| {
                    Checkpoint {
                        optimizer,
                        config,
                        groups: None,
                        scaler: None,
                        step,
                        torch_step,
                        tensors,
                        states,
                    }
                })
        }

        /// The right layout and states, crafted step, config and values.
        fn well_formed() -> impl Strategy<Value = Checkpoint> {
            let values = || {
                (
                    prop::collection::vec(any::<f32>(), 3),
                    prop::collection::vec(any::<f32>(), 4),
                )
                    .prop_map(|(a, b)| vec![Some(a), Some(b)])
            };
            (
                config(),
                prop_oneof![Just(0u32), Just(u32::MAX), Just(u32::MAX - 1), any::<u32>()],
                values(),
                values(),
                prop::option::weighted(0.2, values()),
            )
                .prop_map(|(config, step, m, v, max)| Checkpoint {
                    optimizer: "Adam".into(),
                    config,
                    groups: None,
                    scaler: None,
                    step,
                    torch_step: true,
                    tensors: vec![("a".into(), vec![3]), ("b".into(), vec![2, 2])],
                    states: [
                        Some(("exp_avg".to_string(), m)),
                        Some(("exp_avg_sq".to_string(), v)),
                        max.map(|x| ("max_exp_avg_sq".to_string(), x)),
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// A crafted checkpoint with a valid checksum either loads into a working
            /// optimizer or is rejected with the optimizer unchanged; never a panic.
            #[test]
            fn crafted_checkpoints_load_cleanly_or_change_nothing(
                c in prop_oneof![well_formed(), checkpoint()]
            ) {
                let (mut set, mut opt) = target();
                let before = opt.states().save().unwrap();
                let Ok(bytes) = c.encode() else {
                    // Unencodable (two entries of one name): nothing to load.
                    return Ok(());
                };
                match opt.checkpoint().load(&bytes) {
                    Ok(()) => {
                        prop_assert_eq!(opt.states().step_count().unwrap(), c.step);
                        for name in opt.states().names() {
                            prop_assert_eq!(opt.states().get(name).unwrap().len(), 7);
                        }
                        set.upload_grads(&[0.5; 7]).unwrap();
                        let state = opt.step(&mut set, &StepOptions::default()).unwrap()
                            .read_blocking().unwrap();
                        // The step count saturates instead of wrapping to 0.
                        prop_assert_eq!(state.step, c.step.saturating_add(1));
                    }
                    Err(e) => {
                        prop_assert!(matches!(e, Error::Checkpoint(_) | Error::InvalidHyperparameter { .. }), "{}", e);
                        prop_assert_eq!(opt.states().save().unwrap(), before);
                    }
                }
            }

            /// Any bytes decode or are rejected, never a panic: raw garbage, and valid
            /// safetensors headers with random metadata values.
            #[test]
            fn any_bytes_decode_or_are_rejected(
                body in prop::collection::vec(any::<u8>(), 0..200),
                meta in prop::collection::vec(("[a-z0-9]{1,8}", ".{0,20}"), 0..6),
            ) {
                let _ = Checkpoint::decode(&body);
                let mut metadata = serde_json::Map::new();
                for (k, v) in meta {
                    metadata.insert(k, serde_json::Value::String(v));
                }
                for k in ["format", "version", "tensors", "states", "crc32", "step"] {
                    metadata.entry(k).or_insert_with(|| serde_json::Value::String("[]".into()));
                }
                let crafted = tensors::tests_support::file(
                    serde_json::Value::Object(metadata),
                    vec![("a.exp_avg".into(), vec![3], vec![0u8; 12])],
                );
                let (_, mut opt) = target();
                let before = opt.states().save().unwrap();
                if opt.checkpoint().load(&crafted).is_err() {
                    prop_assert_eq!(opt.states().save().unwrap(), before);
                }
            }
        }
    }
}
