//! Version 2 of the checkpoint format, written by earlier builds and still read:
//! ```text
//! "CLIPSTEP" | version u32 | optimizer name (str) | config as JSON (str) | step u32
//! | tensor count u32 | per tensor: name (str), ndim u32, dims (u64 each)
//! | state slot count u32 | per slot: present u8, then name (str), value count u64, values (f32 each)
//! | CRC-32 of everything before it (u32)
//! ```
//! (little-endian; `str` is a u32 byte length and UTF-8). Each state holds all tensors'
//! values concatenated in the saved order; decoding splits them per tensor.

use super::{bad, checked_numel, Checkpoint};
use crate::error::Result;

const MAGIC: &[u8; 8] = b"CLIPSTEP";

/// The version these files carry.
const VERSION: u32 = 2;

/// Whether `bytes` start like a version-2 file (or any file of the old binary format).
pub(super) fn is_v2(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parses a version-2 file: header, version and checksum, then every field, each size
/// checked against the bytes that remain.
pub(super) fn decode(bytes: &[u8]) -> Result<Checkpoint> {
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a clipstep checkpoint (no CLIPSTEP header)"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let mut r = Reader {
        bytes: body,
        at: MAGIC.len(),
    };
    let version = r.u32()?;
    if version != VERSION {
        return Err(bad(format!(
            "binary format version {version}; this build reads version {VERSION} of it \
             and writes version {} (safetensors)",
            super::CHECKPOINT_VERSION
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
                .map(|_| {
                    r.u64()
                        .and_then(|d| usize::try_from(d).map_err(|_| bad("dimension too large")))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((name, shape))
        })
        .collect::<Result<Vec<_>>>()?;
    let slots = (0..r.u32()?)
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
    let numels = tensors
        .iter()
        .map(|(name, shape)| {
            checked_numel(shape)
                .ok_or_else(|| bad(format!("tensor {name:?}: shape {shape:?} overflows")))
        })
        .collect::<Result<Vec<_>>>()?;
    let states = slots
        .into_iter()
        .flatten()
        .map(|(name, values)| {
            let mut parts = Vec::with_capacity(numels.len());
            let mut at = 0usize;
            for &n in &numels {
                let end = at.checked_add(n).filter(|&e| e <= values.len());
                let end =
                    end.ok_or_else(|| bad(format!("state {name} is shorter than its tensors")))?;
                parts.push(Some(values[at..end].to_vec()));
                at = end;
            }
            if at != values.len() {
                return Err(bad(format!("state {name} is longer than its tensors")));
            }
            Ok((name, parts))
        })
        .collect::<Result<Vec<_>>>()?;
    // Version 2 was written by SGD, Adam, AdamW and RMSprop, whose PyTorch step is
    // restored from `step` on save.
    Ok(Checkpoint {
        torch_step: optimizer != "SGD",
        optimizer,
        config,
        groups: None,
        scaler: None,
        step,
        tensors,
        states,
    })
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
        Ok(crate::device::gpu::f32s(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version-2 file committed by the build before version 3 (Adam with amsgrad and
    /// weight decay, two steps over tensors `w` [3, 5], `b` [5], `scalar` []).
    const FIXTURE: &[u8] = include_bytes!("../../fixtures/checkpoint_v2_adam.bin");

    #[test]
    fn a_version_2_file_decodes_per_tensor() {
        let c = decode(FIXTURE).unwrap();
        assert_eq!(c.optimizer, "Adam");
        assert_eq!(c.step, 2);
        assert_eq!(
            c.tensors,
            vec![
                ("w".into(), vec![3, 5]),
                ("b".into(), vec![5]),
                ("scalar".into(), vec![])
            ]
        );
        let names: Vec<&str> = c.states.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
        for (_, parts) in &c.states {
            let lens: Vec<usize> = parts.iter().flatten().map(Vec::len).collect();
            assert_eq!(lens, [15, 5, 1]);
        }
        let mut flipped = FIXTURE.to_vec();
        flipped[100] ^= 1;
        assert!(decode(&flipped)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }
}
