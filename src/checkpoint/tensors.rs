//! Versions 4 and 3 of the checkpoint format: a safetensors file.
//!
//! Entries: `<tensor>.<state>` (f32, the tensor's shape) for every state and tensor, and
//! `<tensor>.step` (f32, shape `[]`) when PyTorch's state for the optimizer holds a step.
//! Metadata (all strings): `format` = `clipstep`, `version` = `3`, `optimizer`, `config`
//! (the first parameter group's config, JSON), `groups` (every parameter group: tensors,
//! config, `in_norm`, `clipped`; JSON), `step` (the exact u32 count), `tensors` (JSON `[[name, shape], ...]`
//! in the saved set's order), `states` (JSON list of state names, in the optimizer's
//! order), `crc32`, `scaler` (JSON, when the optimizer has a loss scaler), and
//! `state_tensors` when some state is kept by some tensors only (parameter groups that
//! differ in amsgrad, momentum or centered): JSON `{state: [tensor index, ...]}`, the
//! tensors (indices into `tensors`, increasing) that have a `<tensor>.<state>` entry; a
//! state not in it is every tensor's. Files without sparse states are unchanged.
//!
//! `crc32` (8 lowercase hex digits) is, in version 4, the CRC-32 (zlib's) of the **whole
//! file**, its length prefix, JSON header and data, read with the field's own 8 digits as
//! `00000000`: the header appears in the compact form `"crc32":"xxxxxxxx"` exactly once.
//! safetensors has no checksum of its own, and a flipped bit anywhere, in a state, a
//! hyperparameter or the step count, must not load a different run. CRC-32 detects every
//! single-bit error and every burst of up to 32 bits. Version 3 (earlier builds, and
//! `scripts/checkpoint_torch.py` before version 4) covered the states' values only
//! (states in order, tensors in order, little-endian f32); it is still read.
//!
//! The redundant fields must agree: every `<tensor>.step` entry holds `step` (as f32), and
//! the optimizer checks `config` against the first of `groups`.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors};

use super::{bad, checked_numel, Checkpoint, CHECKPOINT_VERSION};
use crate::error::Result;

const FORMAT: &str = "clipstep";

/// The version whose `crc32` covers the states' values only (still read).
const DATA_CRC_VERSION: u32 = 3;

/// The CRC field's key as it appears in the compact JSON header.
const CRC_KEY: &[u8] = br#""crc32":""#;

/// Where the 8 hex digits of the header's one `"crc32":"` field start in `file`, `None`
/// when the header holds none or several.
fn crc_digits_at(file: &[u8]) -> Option<usize> {
    let len = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    let header = file.get(8..8usize.checked_add(len)?)?;
    let mut found = header
        .windows(CRC_KEY.len())
        .enumerate()
        .filter(|(_, w)| *w == CRC_KEY)
        .map(|(i, _)| 8 + i + CRC_KEY.len());
    let at = found.next()?;
    let closed = file.get(at + 8) == Some(&b'"');
    (found.next().is_none() && closed).then_some(at)
}

/// The CRC-32 of `file` with the 8 digits at `at` read as `00000000`.
fn whole_file_crc(file: &[u8], at: usize) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&file[..at]);
    crc.update(b"00000000");
    crc.update(&file[at + 8..]);
    crc.finalize()
}

/// Checks a version-4 file's whole-file CRC (before anything else of it is believed).
fn check_whole_file_crc(file: &[u8]) -> Result<()> {
    let at = crc_digits_at(file)
        .ok_or_else(|| bad("the header has no single \"crc32\" field: the file is corrupted"))?;
    let stored = std::str::from_utf8(&file[at..at + 8])
        .ok()
        .filter(|d| {
            d.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .and_then(|d| u32::from_str_radix(d, 16).ok())
        .ok_or_else(|| {
            bad("the \"crc32\" field is not 8 lowercase hex digits: the file is corrupted")
        })?;
    if stored != whole_file_crc(file, at) {
        return Err(bad("checksum mismatch: the file is corrupted"));
    }
    Ok(())
}

/// The file's bytes.
pub(super) fn encode(c: &Checkpoint) -> Result<Vec<u8>> {
    let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut state_tensors = serde_json::Map::new();
    for (state, parts) in &c.states {
        for ((tensor, shape), values) in c.tensors.iter().zip(parts) {
            if let Some(values) = values {
                let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
                entries.push((format!("{tensor}.{state}"), shape.clone(), bytes));
            }
        }
        if parts.iter().any(Option::is_none) {
            let kept: Vec<usize> = (0..parts.len()).filter(|&t| parts[t].is_some()).collect();
            state_tensors.insert(state.clone(), kept.into());
        }
    }
    if c.torch_step {
        let step = (c.step as f32).to_le_bytes().to_vec();
        for (tensor, _) in &c.tensors {
            entries.push((format!("{tensor}.step"), Vec::new(), step.clone()));
        }
    }
    let tensors = serde_json::to_string(&c.tensors).map_err(|e| bad(e.to_string()))?;
    let states: Vec<&str> = c.states.iter().map(|(n, _)| n.as_str()).collect();
    let states = serde_json::to_string(&states).map_err(|e| bad(e.to_string()))?;
    let metadata = serde_json::json!({
        "format": FORMAT,
        "version": CHECKPOINT_VERSION.to_string(),
        "optimizer": c.optimizer,
        "config": c.config,
        "step": c.step.to_string(),
        "tensors": tensors,
        "states": states,
        "crc32": "00000000",
    });
    let mut metadata = metadata;
    if let Some(groups) = &c.groups {
        metadata["groups"] = serde_json::Value::String(groups.clone());
    }
    if let Some(scaler) = &c.scaler {
        metadata["scaler"] = serde_json::Value::String(scaler.clone());
    }
    if !state_tensors.is_empty() {
        let json = serde_json::Value::Object(state_tensors).to_string();
        metadata["state_tensors"] = serde_json::Value::String(json);
    }
    let mut file = write_safetensors(metadata, entries)?;
    // No other string of the header can hold `"crc32":"` (serde_json escapes the quotes
    // of metadata values): the field is found once.
    let at = crc_digits_at(&file).ok_or_else(|| bad("the header's crc32 field is not unique"))?;
    let crc = format!("{:08x}", whole_file_crc(&file, at));
    file[at..at + 8].copy_from_slice(crc.as_bytes());
    Ok(file)
}

/// A safetensors file, written here rather than by `safetensors::serialize` so the bytes
/// are a function of the contents (its metadata is a `HashMap`, whose order changes from
/// process to process): an 8-byte little-endian header length, the JSON header (keys
/// sorted: `__metadata__`, then the entries), padded with spaces to 8 bytes, then each
/// entry's data in header order.
fn write_safetensors(
    metadata: serde_json::Value, mut entries: Vec<(String, Vec<usize>, Vec<u8>)>,
) -> Result<Vec<u8>> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if entries.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(bad("two entries share a name (a tensor name repeated?)"));
    }
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), metadata);
    let mut at = 0usize;
    for (name, shape, bytes) in &entries {
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [at, at + bytes.len()] }),
        );
        at += bytes.len();
    }
    let mut json =
        serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| bad(e.to_string()))?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + at);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, _, bytes) in &entries {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// Parses a version-4 (or 3) file and checks it against itself: the CRC matching (in
/// version 4 the whole file's, checked first), every listed tensor and state present with
/// the listed shape as f32, no entry unaccounted for, every `.step` entry equal to `step`.
pub(super) fn decode(bytes: &[u8]) -> Result<Checkpoint> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| {
        bad(format!(
            "not a readable clipstep checkpoint (truncated, corrupted, or neither a \
             safetensors file nor the older binary format): {e}"
        ))
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let empty = HashMap::new();
    let meta = header.metadata().as_ref().unwrap_or(&empty);
    let field = |key: &str| {
        meta.get(key).ok_or_else(|| {
            bad(format!(
                "a safetensors file without clipstep's {key:?} metadata"
            ))
        })
    };
    if field("format")? != FORMAT {
        return Err(bad("a safetensors file, but not a clipstep checkpoint"));
    }
    let version = field("version")?;
    let whole_file = if version == &CHECKPOINT_VERSION.to_string() {
        true
    } else if version == &DATA_CRC_VERSION.to_string() {
        false
    } else {
        return Err(bad(format!(
            "version {version}; this build reads version {CHECKPOINT_VERSION} (and 3, 2)"
        )));
    };
    if whole_file {
        check_whole_file_crc(bytes)?;
    }
    let step: u32 = field("step")?
        .parse()
        .map_err(|_| bad("the step count is not a u32"))?;
    let tensors: Vec<(String, Vec<usize>)> = serde_json::from_str(field("tensors")?)
        .map_err(|e| bad(format!("the tensor list does not parse: {e}")))?;
    let state_names: Vec<String> = serde_json::from_str(field("states")?)
        .map_err(|e| bad(format!("the state list does not parse: {e}")))?;
    let mut state_tensors: HashMap<String, Vec<usize>> = match meta.get("state_tensors") {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| bad(format!("the state_tensors field does not parse: {e}")))?,
        None => HashMap::new(),
    };
    let mut crc = crc32fast::Hasher::new();
    let mut used = 0usize;
    let mut states = Vec::with_capacity(state_names.len());
    for state in state_names {
        // The tensors that have this state: those listed (in order, each once), or all.
        let mut kept = vec![true; tensors.len()];
        if let Some(list) = state_tensors.remove(&state) {
            let increasing = list.windows(2).all(|w| w[0] < w[1]);
            if !increasing || list.last().is_some_and(|&t| t >= tensors.len()) {
                return Err(bad(format!(
                    "state_tensors of {state:?} is not a list of increasing tensor indices"
                )));
            }
            kept.fill(false);
            for t in list {
                kept[t] = true;
            }
        }
        let mut parts = Vec::with_capacity(tensors.len());
        for ((tensor, shape), kept) in tensors.iter().zip(kept) {
            if !kept {
                parts.push(None);
                continue;
            }
            let key = format!("{tensor}.{state}");
            let view = file
                .tensor(&key)
                .map_err(|_| bad(format!("entry {key:?} is missing")))?;
            let numel =
                checked_numel(shape).ok_or_else(|| bad(format!("{key}: shape overflows")))?;
            if view.dtype() != Dtype::F32 || view.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "entry {key:?} is {:?} {:?}; the tensor list says F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            debug_assert_eq!(view.data().len(), numel * 4);
            crc.update(view.data());
            parts.push(Some(crate::device::gpu::f32s(view.data())));
            used += 1;
        }
        states.push((state, parts));
    }
    if let Some(state) = state_tensors.keys().next() {
        return Err(bad(format!(
            "state_tensors names {state:?}, which is not in the state list"
        )));
    }
    let has_step = |t: &str| {
        file.tensor(&format!("{t}.step"))
            .is_ok_and(|v| v.dtype() == Dtype::F32 && v.shape().is_empty())
    };
    let torch_step = tensors.first().is_some_and(|(t, _)| has_step(t));
    if torch_step {
        if let Some((t, _)) = tensors.iter().find(|(t, _)| !has_step(t)) {
            return Err(bad(format!(
                "entry \"{t}.step\" is missing or not an f32 scalar"
            )));
        }
        // PyTorch's per-tensor step is the metadata's count (as f32, as it is written).
        for (t, _) in &tensors {
            let key = format!("{t}.step");
            let view = file
                .tensor(&key)
                .map_err(|_| bad(format!("entry {key:?} is missing")))?;
            let value = crate::device::gpu::f32s(view.data())[0];
            if value != step as f32 {
                return Err(bad(format!(
                    "entry {key:?} holds step {value}, the metadata {step}: the file disagrees with itself"
                )));
            }
        }
        used += tensors.len();
    }
    if used != file.len() {
        return Err(bad(format!(
            "{} entries are not listed in the metadata",
            file.len().saturating_sub(used)
        )));
    }
    if !whole_file && format!("{:08x}", crc.finalize()) != *field("crc32")? {
        return Err(bad("checksum mismatch: the file is corrupted"));
    }
    Ok(Checkpoint {
        optimizer: field("optimizer")?.clone(),
        config: field("config")?.clone(),
        groups: meta.get("groups").cloned(),
        scaler: meta.get("scaler").cloned(),
        step,
        torch_step,
        tensors,
        states,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(step: u32) -> Checkpoint {
        Checkpoint {
            optimizer: "Adam".into(),
            config: "{}".into(),
            groups: None,
            step,
            scaler: None,
            torch_step: true,
            tensors: vec![("a".into(), vec![3]), ("b".into(), vec![2])],
            states: vec![(
                "exp_avg".into(),
                vec![Some(vec![1.0, -2.0, 3.5]), Some(vec![0.25, 7.0])],
            )],
        }
    }

    /// The version-3 file an earlier build wrote for `c`: the same entries, `crc32` of the
    /// states' values only.
    fn version_3(c: &Checkpoint) -> Vec<u8> {
        let v4 = encode(c).unwrap();
        let file = SafeTensors::deserialize(&v4).unwrap();
        let (_, header) = SafeTensors::read_metadata(&v4).unwrap();
        let mut meta: serde_json::Map<String, serde_json::Value> = header
            .metadata()
            .clone()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let mut crc = crc32fast::Hasher::new();
        for (state, _) in &c.states {
            for (tensor, _) in &c.tensors {
                crc.update(file.tensor(&format!("{tensor}.{state}")).unwrap().data());
            }
        }
        meta.insert("version".into(), "3".into());
        meta.insert("crc32".into(), format!("{:08x}", crc.finalize()).into());
        let entries = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
            .collect();
        write_safetensors(serde_json::Value::Object(meta), entries).unwrap()
    }

    /// A state some tensors lack: their entries are absent, `state_tensors` lists the
    /// others, and the file decodes to the same parts; a list out of order or out of range
    /// is refused.
    #[test]
    fn a_state_of_some_tensors_only_round_trips() {
        let mut c = checkpoint(4);
        c.states
            .push(("max_exp_avg_sq".into(), vec![None, Some(vec![0.5, 9.0])]));
        let file = encode(&c).unwrap();
        let view = SafeTensors::deserialize(&file).unwrap();
        assert!(view.tensor("a.max_exp_avg_sq").is_err());
        assert!(view.tensor("b.max_exp_avg_sq").is_ok());
        let back = decode(&file).unwrap();
        assert_eq!(back.states, c.states);
        // A dense file has no state_tensors field.
        assert!(
            !String::from_utf8_lossy(&encode(&checkpoint(4)).unwrap()).contains("state_tensors")
        );
        for bad_list in ["[1,1]", "[2]", "[1,0]"] {
            let meta = |file: &[u8]| {
                let (_, header) = SafeTensors::read_metadata(file).unwrap();
                header.metadata().clone().unwrap()
            };
            let mut m: serde_json::Map<String, serde_json::Value> = meta(&file)
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            m.insert(
                "state_tensors".into(),
                format!("{{\"max_exp_avg_sq\":{bad_list}}}").into(),
            );
            let entries = view
                .tensors()
                .into_iter()
                .map(|(name, v)| (name, v.shape().to_vec(), v.data().to_vec()))
                .collect();
            let mut forged = write_safetensors(serde_json::Value::Object(m), entries).unwrap();
            let at = crc_digits_at(&forged).unwrap();
            let crc = format!("{:08x}", whole_file_crc(&forged, at));
            forged[at..at + 8].copy_from_slice(crc.as_bytes());
            let err = decode(&forged).unwrap_err().to_string();
            assert!(
                err.contains("increasing") || err.contains("missing") || err.contains("not listed"),
                "{bad_list}: {err}"
            );
        }
    }

    #[test]
    fn version_3_files_load_with_their_data_checksum() {
        let c = checkpoint(3);
        let v3 = version_3(&c);
        assert_eq!(decode(&v3).unwrap(), c);
        // Its checksum covers the values: a flipped value bit is still caught.
        let mut flipped = v3.clone();
        let first_value = 8 + u64::from_le_bytes(v3[..8].try_into().unwrap()) as usize;
        flipped[first_value] ^= 1;
        assert!(decode(&flipped)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }

    #[test]
    fn version_4_files_round_trip_and_carry_a_whole_file_checksum() {
        let c = checkpoint(7);
        let bytes = encode(&c).unwrap();
        assert_eq!(decode(&bytes).unwrap(), c);
        let at = crc_digits_at(&bytes).unwrap();
        let stored = u32::from_str_radix(std::str::from_utf8(&bytes[at..at + 8]).unwrap(), 16);
        assert_eq!(stored.unwrap(), whole_file_crc(&bytes, at));
        // The step of each `.step` entry is checked against the metadata's.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.contains(r#""step":"7""#));
    }
}

#[cfg(test)]
pub(super) mod tests_support {
    /// A safetensors file of `entries` with `metadata`, for crafted-file tests.
    pub(in crate::checkpoint) fn file(
        metadata: serde_json::Value, entries: Vec<(String, Vec<usize>, Vec<u8>)>,
    ) -> Vec<u8> {
        super::write_safetensors(metadata, entries).unwrap()
    }
}
