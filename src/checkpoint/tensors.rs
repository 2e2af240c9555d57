//! Version 3 of the checkpoint format: a safetensors file.
//!
//! Entries: `<tensor>.<state>` (f32, the tensor's shape) for every state and tensor, and
//! `<tensor>.step` (f32, shape `[]`) when PyTorch's state for the optimizer holds a step.
//! Metadata (all strings): `format` = `clipstep`, `version` = `3`, `optimizer`, `config`
//! (the first parameter group's config, JSON), `groups` (every parameter group: tensors,
//! config, `in_norm`, `clipped`; JSON), `step` (the exact u32 count), `tensors` (JSON `[[name, shape], ...]`
//! in the saved set's order), `states` (JSON list of state names, in the optimizer's
//! order), `crc32` (hex CRC-32 of every state's values, states in order, tensors in order,
//! little-endian f32): safetensors has no checksum of its own, and a flipped bit in a state
//! must not load silently.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors};

use super::{bad, checked_numel, Checkpoint, CHECKPOINT_VERSION};
use crate::error::Result;

const FORMAT: &str = "clipstep";

/// The file's bytes.
pub(super) fn encode(c: &Checkpoint) -> Result<Vec<u8>> {
    let mut crc = crc32fast::Hasher::new();
    let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (state, parts) in &c.states {
        for ((tensor, shape), values) in c.tensors.iter().zip(parts) {
            let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            crc.update(&bytes);
            entries.push((format!("{tensor}.{state}"), shape.clone(), bytes));
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
        "crc32": format!("{:08x}", crc.finalize()),
    });
    let mut metadata = metadata;
    if let Some(groups) = &c.groups {
        metadata["groups"] = serde_json::Value::String(groups.clone());
    }
    if let Some(scaler) = &c.scaler {
        metadata["scaler"] = serde_json::Value::String(scaler.clone());
    }
    write_safetensors(metadata, entries)
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

/// Parses a version-3 file and checks it against itself: every listed tensor and state
/// present with the listed shape as f32, no entry unaccounted for, the CRC matching.
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
    if version != &CHECKPOINT_VERSION.to_string() {
        return Err(bad(format!(
            "version {version}; this build reads version {CHECKPOINT_VERSION} (and 2)"
        )));
    }
    let step: u32 = field("step")?
        .parse()
        .map_err(|_| bad("the step count is not a u32"))?;
    let tensors: Vec<(String, Vec<usize>)> = serde_json::from_str(field("tensors")?)
        .map_err(|e| bad(format!("the tensor list does not parse: {e}")))?;
    let state_names: Vec<String> = serde_json::from_str(field("states")?)
        .map_err(|e| bad(format!("the state list does not parse: {e}")))?;
    let mut crc = crc32fast::Hasher::new();
    let mut used = 0usize;
    let mut states = Vec::with_capacity(state_names.len());
    for state in state_names {
        let mut parts = Vec::with_capacity(tensors.len());
        for (tensor, shape) in &tensors {
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
            parts.push(crate::device::gpu::f32s(view.data()));
            used += 1;
        }
        states.push((state, parts));
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
        used += tensors.len();
    }
    if used != file.len() {
        return Err(bad(format!(
            "{} entries are not listed in the metadata",
            file.len().saturating_sub(used)
        )));
    }
    if format!("{:08x}", crc.finalize()) != *field("crc32")? {
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
pub(super) mod tests_support {
    /// A safetensors file of `entries` with `metadata`, for crafted-file tests.
    pub(in crate::checkpoint) fn file(
        metadata: serde_json::Value, entries: Vec<(String, Vec<usize>, Vec<u8>)>,
    ) -> Vec<u8> {
        super::write_safetensors(metadata, entries).unwrap()
    }
}
