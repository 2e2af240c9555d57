//! The optimizer checkpoint file format, independent of any shader uniform: the config is
//! the optimizer's own serde form (JSON), the states plain f32 arrays.
//!
//! Format (little-endian), version 2:
//! ```text
//! "CLIPSTEP" | version u32 | optimizer name (str) | config as JSON (str) | step u32
//! | tensor count u32 | per tensor: name (str), ndim u32, dims (u64 each)
//! | state slot count u32 | per slot: present u8, then name (str), value count u64, values (f32 each)
//! | CRC-32 of everything before it (u32)
//! ```
//! `str` is a u32 byte length and UTF-8. [`Checkpoint::decode`] checks the header, version
//! and checksum and parses everything; what the file must agree with (optimizer, layout,
//! states) is checked by the optimizer before it writes anything.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CLIPSTEP";

/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 2;

/// Everything a checkpoint holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checkpoint {
    /// The optimizer's name (`SGD`, `Adam`, ...).
    pub optimizer: String,
    /// The config as JSON.
    pub config: String,
    /// Steps taken.
    pub step: u32,
    /// Name and shape of every tensor, in order.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// Per state slot: its name and all tensors' values concatenated, or `None`.
    pub states: Vec<Option<(String, Vec<f32>)>>,
}

pub(crate) fn bad(msg: impl Into<String>) -> Error {
    Error::Checkpoint(msg.into())
}

impl Checkpoint {
    /// The file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(MAGIC);
        put_u32(&mut w, CHECKPOINT_VERSION);
        put_str(&mut w, &self.optimizer);
        put_str(&mut w, &self.config);
        put_u32(&mut w, self.step);
        put_u32(&mut w, self.tensors.len() as u32);
        for (name, shape) in &self.tensors {
            put_str(&mut w, name);
            put_u32(&mut w, shape.len() as u32);
            for &d in shape {
                w.extend_from_slice(&(d as u64).to_le_bytes());
            }
        }
        put_u32(&mut w, self.states.len() as u32);
        for slot in &self.states {
            match slot {
                Some((name, values)) => {
                    w.push(1);
                    put_str(&mut w, name);
                    w.extend_from_slice(&(values.len() as u64).to_le_bytes());
                    w.extend_from_slice(bytemuck::cast_slice(values));
                }
                None => w.push(0),
            }
        }
        let crc = crc32fast::hash(&w);
        put_u32(&mut w, crc);
        w
    }

    /// Parses and checks a file: [`Error::Checkpoint`] for another format, another
    /// version, a corrupted or truncated file.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint> {
        if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a clipstep checkpoint (no CLIPSTEP header)"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let mut r = Reader {
            bytes: body,
            at: MAGIC.len(),
        };
        let version = r.u32()?;
        if version != CHECKPOINT_VERSION {
            return Err(bad(format!(
                "version {version}; this build reads version {CHECKPOINT_VERSION}"
            )));
        }
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(bad("checksum mismatch: the file is corrupted"));
        }
        let optimizer = r.str()?;
        let config = r.str()?;
        let step = r.u32()?;
        let tensors = (0..r.u32()?)
            .map(|_| {
                let name = r.str()?;
                let shape = (0..r.u32()?)
                    .map(|_| r.u64().map(|d| d as usize))
                    .collect::<Result<Vec<_>>>()?;
                Ok((name, shape))
            })
            .collect::<Result<Vec<_>>>()?;
        let states = (0..r.u32()?)
            .map(|_| match r.take(1)?[0] {
                0 => Ok(None),
                _ => {
                    let name = r.str()?;
                    let n = usize::try_from(r.u64()?).map_err(|_| bad("state too large"))?;
                    Ok(Some((name, r.f32s(n)?)))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if r.at != body.len() {
            return Err(bad("trailing bytes after the last state"));
        }
        Ok(Checkpoint {
            optimizer,
            config,
            step,
            tensors,
            states,
        })
    }
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

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_u32(w, s.len() as u32);
    w.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| bad("truncated: the file ends before its contents do"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| bad("a name is not UTF-8"))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| bad("state too large"))?)?;
        Ok(crate::gpu::f32s(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_is_the_identity() {
        let c = Checkpoint {
            optimizer: "SGD".into(),
            config: "{\"lr\":0.1}".into(),
            step: 7,
            tensors: vec![("w".into(), vec![2, 3]), ("b".into(), vec![])],
            states: vec![
                Some(("momentum_buffer".into(), vec![1.5, -0.0, f32::NAN])),
                None,
            ],
        };
        let back = Checkpoint::decode(&c.encode()).unwrap();
        assert_eq!(back.tensors, c.tensors);
        assert_eq!(back.config, c.config);
        let (bits, want): (Vec<u32>, Vec<u32>) = (
            back.states[0]
                .as_ref()
                .unwrap()
                .1
                .iter()
                .map(|x| x.to_bits())
                .collect(),
            c.states[0]
                .as_ref()
                .unwrap()
                .1
                .iter()
                .map(|x| x.to_bits())
                .collect(),
        );
        assert_eq!(bits, want);
        assert_eq!(back.states[1], None);
    }

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

        fn slot() -> impl Strategy<Value = Option<(String, Vec<f32>)>> {
            let name = prop_oneof![
                Just("exp_avg".to_string()),
                Just("exp_avg_sq".to_string()),
                Just("max_exp_avg_sq".to_string()),
                "[a-z_]{0,12}"
            ];
            let values = prop::collection::vec(any::<f32>(), 0..9);
            prop::option::weighted(0.9, (name, values))
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
                prop::collection::vec(slot(), 0..4),
            )
                .prop_map(|(optimizer, config, step, tensors, states)| Checkpoint {
                    optimizer,
                    config,
                    step,
                    tensors,
                    states,
                })
        }

        /// The right layout and states, crafted step, config and values.
        fn well_formed() -> impl Strategy<Value = Checkpoint> {
            let values = || prop::collection::vec(any::<f32>(), 7);
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
                    step,
                    tensors: vec![("a".into(), vec![3]), ("b".into(), vec![2, 2])],
                    states: vec![
                        Some(("exp_avg".into(), m)),
                        Some(("exp_avg_sq".into(), v)),
                        max.map(|x| ("max_exp_avg_sq".to_string(), x)),
                    ],
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
                let before = opt.save().unwrap();
                match opt.load(&c.encode()) {
                    Ok(()) => {
                        prop_assert_eq!(opt.step_count().unwrap(), c.step);
                        for name in opt.state_names() {
                            prop_assert_eq!(opt.state(name).unwrap().len(), 7);
                        }
                        set.upload_grads(&[0.5; 7]).unwrap();
                        let state = opt.step(&mut set, &StepOptions::default()).unwrap()
                            .read_blocking().unwrap();
                        // The step count saturates instead of wrapping to 0.
                        prop_assert_eq!(state.step, c.step.saturating_add(1));
                    }
                    Err(e) => {
                        prop_assert!(matches!(e, Error::Checkpoint(_) | Error::InvalidHyperparameter { .. }), "{}", e);
                        prop_assert_eq!(opt.save().unwrap(), before);
                    }
                }
            }

            /// Any bytes, with the checksum made valid, decode or are rejected; never a panic.
            #[test]
            fn any_body_with_a_valid_checksum_decodes_or_is_rejected(
                body in prop::collection::vec(any::<u8>(), 0..200),
                keep_header in any::<bool>(),
            ) {
                let mut bytes = Vec::new();
                if keep_header {
                    bytes.extend_from_slice(MAGIC);
                    put_u32(&mut bytes, CHECKPOINT_VERSION);
                }
                bytes.extend_from_slice(&body);
                let crc = crc32fast::hash(&bytes);
                put_u32(&mut bytes, crc);
                let _ = Checkpoint::decode(&bytes);
                let (_, mut opt) = target();
                let before = opt.save().unwrap();
                if opt.load(&bytes).is_err() {
                    prop_assert_eq!(opt.save().unwrap(), before);
                }
            }
        }
    }
}
