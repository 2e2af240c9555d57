//! The engine's checkpoint I/O: reading its states and step count, saving them as a
//! checkpoint (`crate::checkpoint`'s format) and loading one, matched by tensor name.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{Engine, Rule};
use crate::checkpoint::{bad, Checkpoint, LoadOptions, MissingTensors, UnexpectedTensors};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::kernels::abi::DeviceStepState;
use crate::kernels::host;
use crate::optim::groups::ParamGroup;
use crate::optim::loss_scale::{check_scale, LossScaler};
use crate::storage::arena::{image_writes, read_all, slab_images, write_all, Arena};
use crate::storage::param_set::gpu_bindings;
use crate::storage::quantized;
use crate::storage::typed_io;

/// A checkpoint's loss scaler: its settings and where its state stood.
#[derive(Serialize, serde::Deserialize)]
struct SavedScaler {
    config: LossScaler,
    scale: f32,
    growth_tracker: u32,
    hysteresis_left: u32,
}

impl<R: Rule> Engine<R> {
    /// State `name`, the tensors that keep it (every tensor, unless only some groups
    /// keep it) concatenated in the set's order.
    pub(crate) fn state(&self, name: &str) -> Result<Vec<f32>> {
        let k = self.slot(name)?;
        // Named states are allocated with the optimizer, and `load` keeps the same names.
        let arena = self.states[k].as_ref().ok_or_else(|| self.unknown(name))?;
        Ok(self
            .state_parts(k, arena)?
            .into_iter()
            .flatten()
            .flatten()
            .collect())
    }

    /// State slot `k` (held in `arena`) tensor by tensor in the set's order: the values of
    /// each tensor that keeps it, `None` for the others.
    fn state_parts(&self, k: usize, arena: &Arena) -> Result<Vec<Option<Vec<f32>>>> {
        let all = self.read_state_arena(k, arena)?;
        let mut at = 0usize;
        Ok(self
            .layout
            .tensors
            .iter()
            .enumerate()
            .map(|(t, info)| {
                let n = info.numel as usize;
                at += n;
                self.keeps(k, t).then(|| all[at - n..at].to_vec())
            })
            .collect())
    }

    /// The names of the tensors that keep state `name`, in the set's order.
    pub(crate) fn state_tensors(&self, name: &str) -> Result<Vec<String>> {
        let k = self.slot(name)?;
        Ok(self
            .layout
            .tensors
            .iter()
            .enumerate()
            .filter(|&(t, _)| self.keeps(k, t))
            .map(|(_, info)| info.name.clone())
            .collect())
    }

    /// The slot of state `name`, kept by some group.
    fn slot(&self, name: &str) -> Result<usize> {
        super::slot_names(&self.groups)
            .iter()
            .position(|n| *n == Some(name))
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> Error {
        Error::UnknownState {
            name: name.to_string(),
            available: super::slot_names(&self.groups)
                .iter()
                .flatten()
                .copied()
                .collect(),
        }
    }

    /// Whether tensor `t` keeps state slot `k` (its group's configuration does).
    pub(super) fn keeps(&self, k: usize, t: usize) -> bool {
        self.groups[self.group_of[t] as usize].config.state_names()[k].is_some()
    }

    /// State slot `k`'s values (held in `arena`), all tensors concatenated (bf16 states
    /// widened exactly, 8-bit states dequantized).
    pub(super) fn read_state_arena(&self, k: usize, arena: &Arena) -> Result<Vec<f32>> {
        if let (Some(slabs), Arena::Gpu(bindings), Some(gpu)) = (&self.q8, arena, self.ctx.gpu()) {
            return quantized::read_values(gpu, &self.layout, slabs, bindings, k);
        }
        if let (Some(f), Arena::Gpu(bindings), Some(gpu), true) =
            (&self.factored, arena, self.ctx.gpu(), k < 2)
        {
            // One set-wide buffer, which every slab binds whole.
            let size = (f.slot_len[k] * 4).max(16);
            let bytes = gpu.read_blocking(&[(&bindings[0].buffer, 0, size)])?;
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            return Ok(f.image(&self.layout, k, &values));
        }
        match (self.state_dtype, arena, self.ctx.gpu()) {
            (Dtype::Bf16, Arena::Gpu(bindings), Some(gpu)) => {
                typed_io::read_values(gpu, &self.layout, &bf16_targets(bindings), None)
            }
            _ => read_all(self.ctx.gpu(), &self.layout, arena, "state"),
        }
    }

    pub(crate) fn step_count(&self) -> Result<u32> {
        Ok(self.read_state()?.step)
    }

    pub(super) fn read_state(&self) -> Result<DeviceStepState> {
        match &self.device {
            Some(d) => {
                let size = std::mem::size_of::<DeviceStepState>() as u64;
                let bytes = d.gpu.read_blocking(&[(&d.workspace.state, 0, size)])?;
                Ok(bytemuck::pod_read_unaligned(&bytes))
            }
            None => Ok(self.host_state),
        }
    }

    pub(crate) fn save(&self) -> Result<Vec<u8>> {
        // Each state for the tensors that keep it, as PyTorch's state dict holds it.
        let states = super::slot_names(&self.groups)
            .iter()
            .zip(&self.states)
            .enumerate()
            .filter_map(|(k, (name, arena))| Some((k, name.as_ref()?, arena.as_ref()?)))
            .map(|(k, name, arena)| Ok((name.to_string(), self.state_parts(k, arena)?)))
            .collect::<Result<Vec<_>>>()?;
        let step_state = self.read_state()?;
        let scaler = match self.scaler {
            Some(config) => Some(
                serde_json::to_string(&SavedScaler {
                    config,
                    scale: step_state.loss_scale,
                    growth_tracker: step_state.growth_tracker,
                    hysteresis_left: step_state.hysteresis_left,
                })
                .map_err(|e| bad(e.to_string()))?,
            ),
            None => None,
        };
        let checkpoint = Checkpoint {
            optimizer: R::NAME.to_string(),
            scaler,
            config: serde_json::to_string(&self.groups[0].config)
                .map_err(|e| bad(e.to_string()))?,
            groups: Some(serde_json::to_string(&self.groups).map_err(|e| bad(e.to_string()))?),
            step: step_state.step,
            torch_step: R::TORCH_STEP,
            tensors: self
                .layout
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect(),
            states,
        };
        checkpoint.encode()
    }

    pub(crate) fn load(&mut self, bytes: &[u8], options: &LoadOptions) -> Result<()> {
        let c = Checkpoint::decode(bytes)?;
        if c.optimizer != R::NAME {
            return Err(bad(format!(
                "saved by {}; this optimizer is {}",
                c.optimizer,
                R::NAME
            )));
        }
        let configs = self.saved_configs(&c)?;
        // The arenas and bind groups were built for this optimizer's states, group by
        // group: a checkpoint whose groups keep others (amsgrad, momentum, centered) cannot
        // be loaded into it.
        let want: Vec<&str> = super::slot_names(&self.groups)
            .into_iter()
            .flatten()
            .collect();
        let saved: Vec<&str> = c.states.iter().map(|(n, _)| n.as_str()).collect();
        let differing = configs
            .iter()
            .zip(&self.groups)
            .position(|(config, group)| config.state_names() != group.config.state_names());
        if saved != want || differing.is_some() {
            let g = differing.unwrap_or(0);
            let names = |c: &R| c.state_names().into_iter().flatten().collect::<Vec<_>>();
            return Err(bad(format!(
                "optimizer states differ: the checkpoint keeps {saved:?} (its group {g} \
                 {:?}), this optimizer keeps {want:?} (its group {g} {:?}); build the \
                 optimizer with the checkpoint's amsgrad / momentum / centered settings",
                names(&configs[g]),
                names(&self.groups[g].config)
            )));
        }
        // 8-bit states: which tensors keep them 8-bit was fixed when the optimizer was built.
        if self.q8.is_some() {
            let differs = self.layout.tensors.iter().enumerate().find(|(t, info)| {
                let g = self.group_of[*t] as usize;
                configs[g].quantizes(info.numel) != self.groups[g].config.quantizes(info.numel)
            });
            if let Some((_, info)) = differs {
                return Err(bad(format!(
                    "tensor {:?} keeps 8-bit states under one of the checkpoint's and this \
                     optimizer's configs and f32 under the other: build the optimizer with \
                     the checkpoint's min_8bit_size",
                    info.name
                )));
            }
        }
        // Muon: the device's Newton–Schulz plan was built for each group's settings.
        let plans = configs
            .iter()
            .zip(&self.groups)
            .position(|(config, group)| {
                config.orthogonalization() != group.config.orthogonalization()
            });
        if let (Some(g), true) = (plans, self.device.is_some()) {
            return Err(bad(format!(
                "the checkpoint's group {g} orthogonalizes with {:?}, this optimizer's with                  {:?}: build the optimizer with the checkpoint's ns_coefficients, ns_steps,                  eps, ns_bf16 and adjust_lr_fn",
                configs[g].orthogonalization(),
                self.groups[g].config.orthogonalization()
            )));
        }
        let values = self.match_by_name(&c, options)?;
        let scaler: Option<SavedScaler> = match &c.scaler {
            Some(json) => {
                let saved: SavedScaler = serde_json::from_str(json)
                    .map_err(|e| bad(format!("the loss scaler does not parse: {e}")))?;
                saved.config.validate()?;
                check_scale(saved.scale)?;
                Some(saved)
            }
            None => None,
        };
        let state = DeviceStepState {
            step: c.step,
            loss_scale: scaler.as_ref().map_or(1.0, |s| s.scale),
            growth_tracker: scaler.as_ref().map_or(0, |s| s.growth_tracker),
            hysteresis_left: scaler.as_ref().map_or(0, |s| s.hysteresis_left),
            ..DeviceStepState::initial()
        };
        // Everything is checked: now write, in one submission on a GPU (all or nothing).
        let arenas = self.states.iter().flatten();
        match &self.device {
            Some(d) => {
                // f32 states as slab images; bf16 states rounded to nearest even (exact for
                // values saved from bf16 states), piece by piece.
                let arenas: Vec<&Arena> = arenas.collect();
                // 8-bit states: each slab's words, requantized from the values.
                let slots = (0..3).filter(|&k| self.states[k].is_some());
                let q8_words: Vec<Vec<Vec<u32>>> = match &self.q8 {
                    Some(slabs) => slots
                        .zip(&values)
                        .map(|(k, v)| quantized::value_words(&self.layout, slabs, k, v))
                        .collect(),
                    None => Vec::new(),
                };
                // Factored states: `row_var` and `col_var` buffers from the per-element
                // values (`variance`, a sparse state, as slab images below).
                let kept: Vec<usize> = (0..3).filter(|&k| self.states[k].is_some()).collect();
                let factored: Vec<(&wgpu::Buffer, Vec<f32>)> = match &self.factored {
                    Some(f) => kept
                        .iter()
                        .zip(arenas.iter().zip(&values))
                        .filter(|(&k, _)| k < 2)
                        .map(|(&k, (arena, v))| {
                            (
                                &gpu_bindings(arena)[0].buffer,
                                f.compact(&self.layout, k, v),
                            )
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let (images, bf16_writes): (Vec<Vec<Vec<f32>>>, Vec<typed_io::Write<'_>>) =
                    match self.state_dtype {
                        _ if self.q8.is_some() => (Vec::new(), Vec::new()),
                        _ if self.factored.is_some() => (
                            kept.iter()
                                .zip(&values)
                                .map(|(&k, v)| match k {
                                    2 => slab_images(&self.layout, v),
                                    _ => Vec::new(),
                                })
                                .collect(),
                            Vec::new(),
                        ),
                        Dtype::Bf16 => (
                            Vec::new(),
                            arenas
                                .iter()
                                .zip(&values)
                                .flat_map(|(arena, v)| {
                                    let targets = bf16_targets(gpu_bindings(arena));
                                    typed_io::value_writes(&self.layout, &targets, None, v)
                                })
                                .collect(),
                        ),
                        _ => (
                            values
                                .iter()
                                .map(|v| slab_images(&self.layout, v))
                                .collect(),
                            Vec::new(),
                        ),
                    };
                // The finalize's schedules follow the loaded configs (their betas).
                let schedules = super::group_schedules(configs.iter());
                let mut writes = vec![
                    (&d.workspace.state, 0, bytemuck::bytes_of(&state)),
                    d.workspace.schedule_write(&schedules),
                ];
                for (arena, images) in arenas.iter().zip(&images) {
                    writes.extend(image_writes(&self.layout, gpu_bindings(arena), images));
                }
                for (buffer, values) in &factored {
                    writes.push((*buffer, 0, bytemuck::cast_slice(values)));
                }
                for (arena, words) in arenas.iter().zip(&q8_words) {
                    for (binding, words) in gpu_bindings(arena).iter().zip(words) {
                        writes.push((&binding.buffer, 0, bytemuck::cast_slice(words)));
                    }
                }
                writes.extend(
                    bf16_writes
                        .iter()
                        .map(|(b, at, bytes)| (*b, *at, bytes.as_slice())),
                );
                d.gpu.upload(&writes)?;
                // The step state was replaced: earlier reports no longer describe it.
                d.workspace.generation.fetch_add(1, Ordering::SeqCst);
            }
            None => {
                for (arena, v) in self.states.iter_mut().flatten().zip(&values) {
                    write_all(None, &self.layout, arena, v, "state")?;
                    // bf16 states hold bf16 values, as the device rounds them on load.
                    if let (Dtype::Bf16, Arena::Cpu(v)) = (self.state_dtype, arena) {
                        host::round16(v, Dtype::Bf16, None, 0);
                    }
                }
                self.host_state = state;
            }
        }
        for (group, config) in self.groups.iter_mut().zip(configs) {
            group.config = config;
        }
        self.scaler = scaler.map(|s| s.config);
        Ok(())
    }

    /// The hyperparameters a checkpoint restores, one per parameter group of this
    /// optimizer, each checked: a checkpoint with groups must have as many as this
    /// optimizer (their tensors are this optimizer's: membership follows the set); one
    /// without (version 2) restores a single-group optimizer.
    pub(super) fn saved_configs(&self, c: &Checkpoint) -> Result<Vec<R>> {
        let config: R = serde_json::from_str(&c.config)
            .map_err(|e| bad(format!("the {} config does not parse: {e}", R::NAME)))?;
        let configs: Vec<R> = match &c.groups {
            Some(json) => serde_json::from_str::<Vec<ParamGroup<R>>>(json)
                .map_err(|e| bad(format!("the {} groups do not parse: {e}", R::NAME)))?
                .into_iter()
                .map(|g| g.config)
                .collect(),
            None => vec![config.clone()],
        };
        // `config` is the first group's (what PyTorch tools read): it must say the same.
        let as_json = |c: &R| serde_json::to_value(c).map_err(|e| bad(e.to_string()));
        if let Some(first) = configs.first() {
            if as_json(first)? != as_json(&config)? {
                return Err(bad(format!(
                    "the config ({}) differs from the first group's ({}): the file disagrees \
                     with itself",
                    c.config,
                    as_json(first)?
                )));
            }
        }
        if configs.len() != self.groups.len() {
            return Err(bad(format!(
                "the checkpoint has {} parameter groups; this optimizer has {}",
                configs.len(),
                self.groups.len()
            )));
        }
        for config in &configs {
            config.validate()?;
        }
        Ok(configs)
    }

    /// Each state's values for this set, all tensors concatenated in the set's order,
    /// matched to the checkpoint by tensor name under `options`.
    pub(super) fn match_by_name(
        &self, c: &Checkpoint, options: &LoadOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let saved: HashMap<&str, usize> = c
            .tensors
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        if saved.len() != c.tensors.len() {
            return Err(bad("the checkpoint lists a tensor name twice"));
        }
        let here = &self.layout.tensors;
        let mut missing = Vec::new();
        let mut source = Vec::with_capacity(here.len());
        for t in here {
            match saved.get(t.name.as_str()) {
                Some(&i) if c.tensors[i].1 != t.shape => {
                    return Err(bad(format!(
                        "tensor {:?} was saved with shape {:?}; this set has {:?}",
                        t.name, c.tensors[i].1, t.shape
                    )))
                }
                Some(&i) => source.push(Some(i)),
                None => {
                    missing.push(t.name.as_str());
                    source.push(None);
                }
            }
        }
        if !missing.is_empty() && options.missing == MissingTensors::Error {
            return Err(bad(format!(
                "{} tensors of this set are not in the checkpoint: {:?}{} (LoadOptions::missing \
                 = FreshState gives them fresh state)",
                missing.len(),
                &missing[..missing.len().min(4)],
                if missing.len() > 4 { " ..." } else { "" }
            )));
        }
        let names: std::collections::HashSet<&str> = here.iter().map(|t| t.name.as_str()).collect();
        let unexpected: Vec<&str> = c
            .tensors
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !names.contains(n))
            .collect();
        if !unexpected.is_empty() && options.unexpected == UnexpectedTensors::Error {
            return Err(bad(format!(
                "{} tensors of the checkpoint are not in this set: {:?}{} \
                 (LoadOptions::unexpected = Ignore skips them)",
                unexpected.len(),
                &unexpected[..unexpected.len().min(4)],
                if unexpected.len() > 4 { " ..." } else { "" }
            )));
        }
        // A tensor missing from the checkpoint starts fresh: its group's initial state. A
        // tensor has a state in the file exactly when its group keeps it (0s stand for the
        // others, which hold no place on the device).
        let names = super::slot_names(&self.groups);
        let slots = (0..3).filter(|&k| names[k].is_some());
        c.states
            .iter()
            .zip(slots)
            .map(|((state, parts), slot)| {
                let mut all = Vec::with_capacity(self.layout.numel() as usize);
                for (t, (info, src)) in here.iter().zip(&source).enumerate() {
                    let g = self.group_of[t] as usize;
                    let fresh = self.groups[g].config.initial_state()[slot];
                    let n = info.numel as usize;
                    match (src.map(|i| &parts[i]), self.keeps(slot, t)) {
                        (Some(Some(values)), true) => all.extend_from_slice(values),
                        (None, true) => all.resize(all.len() + n, fresh),
                        (Some(None) | None, false) => all.resize(all.len() + n, 0.0),
                        (Some(kept), _) => {
                            return Err(bad(format!(
                                "tensor {:?} {} {state:?} in the checkpoint, but its group {g} \
                                 {}: the file disagrees with its groups",
                                info.name,
                                if kept.is_some() { "has" } else { "lacks" },
                                if kept.is_some() {
                                    "keeps none"
                                } else {
                                    "keeps it"
                                },
                            )))
                        }
                    }
                }
                Ok(all)
            })
            .collect()
    }
}

/// bf16 state `bindings` as transfer targets.
fn bf16_targets(bindings: &[crate::storage::arena::Binding]) -> Vec<typed_io::Target<'_>> {
    bindings.iter().map(|b| Some((b, Dtype::Bf16))).collect()
}
