//! Optimizer checkpoints: config, step count and every state, bit-exact.
//!
//! Format (little-endian), version 1:
//! ```text
//! "CLIPSTEP" | version u32 | optimizer name (u32 len + UTF-8) | Hyper (6 × u32) | step u32
//! | tensor count u32 | per tensor: name (u32 len + UTF-8), ndim u32, dims (u64 each)
//! | per state slot (3): present u8, then name (u32 len + UTF-8) and all tensors' values (f32)
//! | CRC-32 of everything before it (u32)
//! ```
//! Loading parses and checks the whole file (checksum, version, optimizer, layout, state
//! names, config) before it writes anything, so a bad checkpoint changes nothing.

use std::path::Path;

use super::{Fused, Hyper, UpdateRule};
use crate::arena::{read_all, write_all};
use crate::error::{Error, Result};
use crate::reference::StepState;
use crate::report::RawStepState;

const MAGIC: &[u8; 8] = b"CLIPSTEP";
/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

fn bad(msg: impl Into<String>) -> Error {
    Error::Checkpoint(msg.into())
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
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
        Ok(crate::context::f32s(bytes))
    }
}

impl<R: UpdateRule> Fused<R> {
    /// The optimizer's config, step count and states as bytes (a host sync).
    pub fn save(&self) -> Result<Vec<u8>> {
        let mut w = Writer(Vec::new());
        w.0.extend_from_slice(MAGIC);
        w.u32(CHECKPOINT_VERSION);
        w.str(R::NAME);
        w.0.extend_from_slice(bytemuck::bytes_of(&self.config.hyper()));
        w.u32(self.read_state()?.step);
        w.u32(self.layout.tensors.len() as u32);
        for t in &self.layout.tensors {
            w.str(&t.name);
            w.u32(t.shape.len() as u32);
            for &d in &t.shape {
                w.0.extend_from_slice(&(d as u64).to_le_bytes());
            }
        }
        for (name, arena) in self.config.state_names().iter().zip(&self.states) {
            match (name, arena) {
                (Some(name), Some(arena)) => {
                    w.0.push(1);
                    w.str(name);
                    let values = read_all(self.ctx.gpu(), &self.layout, arena, "state")?;
                    w.0.extend_from_slice(bytemuck::cast_slice(&values));
                }
                _ => w.0.push(0),
            }
        }
        let crc = crc32fast::hash(&w.0);
        w.u32(crc);
        Ok(w.0)
    }

    /// [`Fused::save`] to a file.
    pub fn save_to(&self, path: impl AsRef<Path>) -> Result<()> {
        std::fs::write(path, self.save()?)?;
        Ok(())
    }

    /// Restores config, step count and states from [`Fused::save`]'s bytes. A checkpoint
    /// of another version, optimizer, tensor layout or state set, or a corrupted one, is
    /// [`Error::Checkpoint`] and changes nothing.
    pub fn load(&mut self, bytes: &[u8]) -> Result<()> {
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
        let name = r.str()?;
        if name != R::NAME {
            return Err(bad(format!(
                "saved by {name}; this optimizer is {}",
                R::NAME
            )));
        }
        let hyper: Hyper = bytemuck::pod_read_unaligned(r.take(std::mem::size_of::<Hyper>())?);
        let config = R::from_hyper(&hyper);
        config.validate()?;
        let step = r.u32()?;
        let count = r.u32()? as usize;
        if count != self.layout.tensors.len() {
            return Err(bad(format!(
                "layout differs: {count} tensors saved, {} in this set",
                self.layout.tensors.len()
            )));
        }
        for t in &self.layout.tensors {
            let name = r.str()?;
            let ndim = r.u32()? as usize;
            let shape = (0..ndim)
                .map(|_| r.u64().map(|d| d as usize))
                .collect::<Result<Vec<_>>>()?;
            if name != t.name || shape != t.shape {
                return Err(bad(format!(
                    "layout differs: saved tensor {name:?} {shape:?}, this set has {:?} {:?}",
                    t.name, t.shape
                )));
            }
        }
        let numel = self.layout.numel() as usize;
        let mut states = Vec::new();
        for want in self.config.state_names() {
            let saved = match r.take(1)?[0] {
                0 => None,
                _ => Some(r.str()?),
            };
            if saved.as_deref() != want {
                return Err(bad(format!(
                    "optimizer states differ: saved {saved:?}, this optimizer has {want:?} \
                     (e.g. amsgrad, momentum or centered changed)"
                )));
            }
            states.push(match saved {
                Some(_) => Some(r.f32s(numel)?),
                None => None,
            });
        }
        if r.at != body.len() {
            return Err(bad("trailing bytes after the last state"));
        }
        // Everything is checked: now write.
        for (arena, values) in self.states.iter_mut().zip(&states) {
            if let (Some(arena), Some(values)) = (arena, values) {
                write_all(self.ctx.gpu(), &self.layout, arena, values, "state")?;
            }
        }
        let state = StepState {
            step,
            ..StepState::default()
        };
        match &self.gpu {
            Some(g) => {
                let raw = RawStepState::from(state);
                g.gpu
                    .queue
                    .write_buffer(&g.workspace.state, 0, bytemuck::bytes_of(&raw));
                g.gpu.check()?;
            }
            None => self.host_state = state,
        }
        self.config = config;
        Ok(())
    }

    /// [`Fused::load`] from a file.
    pub fn load_from(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = std::fs::read(path)?;
        self.load(&bytes)
    }
}
