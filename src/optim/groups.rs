//! Parameter groups (PyTorch's `param_groups`, Optax's `multi_transform` / `masked`): each
//! tensor belongs to one group, and a group carries its own hyperparameters and whether
//! its tensors count in the global norm and are clipped.
//!
//! On the device a group costs nothing per dispatch: the update kernels read their
//! hyperparameters from a small table (one row per group, rewritten in stream with each
//! step), indexed through a per-slab table of 64-element blocks (every tensor starts on a
//! block, so a block belongs to one tensor and one group). The finalize folds only the
//! tensors counted in the norm, through a per-tensor mask.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::layout::Layout;

/// A parameter group: tensors (by name) with their own hyperparameters.
///
/// As in PyTorch, groups of one optimizer may differ in any hyperparameter (learning rate,
/// weight decay, betas, momentum, eps, ...), including those that add a state (`amsgrad`,
/// zero or non-zero momentum, `centered`): a state some groups keep is stored for their
/// tensors only (`States::bytes` says what the states take), and checkpoints hold it for
/// those tensors, as PyTorch's state dict does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup<C> {
    /// The tensors, by name; every tensor of the set is in exactly one group.
    pub tensors: Vec<String>,
    /// The group's hyperparameters.
    pub config: C,
    /// Whether the group's gradients count in the global norm of a norm clip (default
    /// true). `false` as Megatron does for parameters shared across ranks, or for frozen
    /// ones. Non-finite gradients are detected in every group either way.
    pub in_norm: bool,
    /// Whether the step's clip (by norm or value) applies to the group (default true);
    /// `false` leaves its gradients only unscaled by `grad_scale`.
    pub clipped: bool,
    /// Whether the group's tensors are replicated on every rank of a sharded model (default
    /// false): [`crate::Optimizer::norm_partial`] counts them on rank 0 only, so the
    /// combined norm counts them once (Megatron's shared parameters).
    #[serde(default)]
    pub replicated: bool,
}

impl<C> ParamGroup<C> {
    /// A group of `tensors` with `config`, counted in the norm and clipped.
    pub fn new<S: Into<String>>(tensors: impl IntoIterator<Item = S>, config: C) -> Self {
        ParamGroup {
            tensors: tensors.into_iter().map(Into::into).collect(),
            config,
            in_norm: true,
            clipped: true,
            replicated: false,
        }
    }

    /// The same group, excluded from the global norm.
    pub fn excluded_from_norm(mut self) -> Self {
        self.in_norm = false;
        self
    }

    /// The same group, replicated on every rank: counted in a sharded norm on rank 0 only.
    pub fn replicated(mut self) -> Self {
        self.replicated = true;
        self
    }

    /// The same group, never clipped.
    pub fn unclipped(mut self) -> Self {
        self.clipped = false;
        self
    }
}

/// Where each tensor goes: `group[t]` for tensor `t` of `layout`, checked: at least one
/// group, every tensor in exactly one, no unknown name.
pub(crate) fn assign<C>(layout: &Layout, groups: &[ParamGroup<C>]) -> Result<Vec<u32>> {
    if groups.is_empty() {
        return Err(Error::InvalidGroups(
            "an optimizer needs at least one group".into(),
        ));
    }
    let max = crate::consts::MAX_GROUPS as usize;
    if groups.len() > max {
        return Err(Error::InvalidGroups(format!(
            "{} groups; an optimizer takes at most {max}",
            groups.len()
        )));
    }
    let mut group_of: Vec<Option<u32>> = vec![None; layout.tensors.len()];
    for (g, group) in groups.iter().enumerate() {
        for name in &group.tensors {
            let t = layout.index(name).map_err(|_| {
                Error::InvalidGroups(format!("group {g} names {name:?}, which is not in the set"))
            })?;
            if let Some(first) = group_of[t].replace(g as u32) {
                return Err(Error::InvalidGroups(format!(
                    "tensor {name:?} is in group {first} and group {g}; a tensor belongs to one group"
                )));
            }
        }
    }
    let mut missing = layout
        .tensors
        .iter()
        .zip(&group_of)
        .filter(|(_, g)| g.is_none())
        .map(|(t, _)| t.name.as_str());
    if let Some(name) = missing.next() {
        return Err(Error::InvalidGroups(format!(
            "tensor {name:?} is in no group ({} more); every tensor belongs to one group",
            missing.count()
        )));
    }
    Ok(group_of.into_iter().flatten().collect())
}

/// Per slab, one entry per 64-element block: the group of the tensor there, with
/// `BLOCK_UNCLIPPED` when the group is not clipped. Padding blocks repeat the entry before
/// them (the first tensor's at the start), so a slab of one group has one entry
/// throughout, and its first entry then carries `BLOCK_SLAB_UNIFORM`.
pub(crate) fn block_tables<C>(
    layout: &Layout, group_of: &[u32], groups: &[ParamGroup<C>],
) -> Vec<Vec<u32>> {
    const UNSET: u32 = u32::MAX;
    let mut tables = layout.per_block(UNSET, |t| {
        let g = group_of[t];
        g | if groups[g as usize].clipped {
            0
        } else {
            crate::kernels::abi::BLOCK_UNCLIPPED
        }
    });
    for table in &mut tables {
        let mut last = table.iter().copied().find(|&e| e != UNSET).unwrap_or(0);
        for e in table.iter_mut() {
            if *e == UNSET {
                *e = last;
            }
            last = *e;
        }
        if table.iter().all(|&e| e == table[0]) {
            table[0] |= crate::kernels::abi::BLOCK_SLAB_UNIFORM;
        }
    }
    tables
}

/// Per slab, where each 64-element block lies in the buffer of a state only the groups
/// `keeps` (indexed by group) keep: kept blocks numbered in order, `UNKEPT` for the rest.
/// A block keeps the state when its entry in `block_tables` (padding blocks repeat the
/// entry before them, as the update kernel reads them) is of a keeping group, so every
/// block the kernel touches for that state has a place.
pub(crate) fn compact_blocks(block_tables: &[Vec<u32>], keeps: &[bool]) -> Vec<Vec<u32>> {
    use crate::kernels::abi::BLOCK_GROUP_MASK;
    use crate::storage::arena::UNKEPT;
    block_tables
        .iter()
        .map(|table| {
            let mut next = 0u32;
            table
                .iter()
                .map(|&entry| match keeps[(entry & BLOCK_GROUP_MASK) as usize] {
                    true => {
                        next += 1;
                        next - 1
                    }
                    false => UNKEPT,
                })
                .collect()
        })
        .collect()
}

/// Per slab, the update kernel's compact-block table (binding 16) for the sparse slots
/// `compact` (each from [`compact_blocks`], in slot order): block b's place in column c at
/// `b·columns + c`.
pub(crate) fn sparse_tables(compact: &[&Vec<Vec<u32>>]) -> Vec<Vec<u32>> {
    let Some(first) = compact.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|s| {
            let blocks = first[s].len();
            (0..blocks)
                .flat_map(|b| compact.iter().map(move |slot| slot[s][b]))
                .collect()
        })
        .collect()
}

/// Per tensor, whether rank `rank` counts it in a sharded norm: its group is in the norm,
/// and not replicated unless `rank` is 0.
pub(crate) fn shard_mask<C>(group_of: &[u32], groups: &[ParamGroup<C>], rank: usize) -> Vec<bool> {
    group_of
        .iter()
        .map(|&g| {
            let group = &groups[g as usize];
            group.in_norm && (!group.replicated || rank == 0)
        })
        .collect()
}

/// Per tensor, 1 when its group counts in the global norm.
pub(crate) fn norm_mask<C>(group_of: &[u32], groups: &[ParamGroup<C>]) -> Vec<u32> {
    group_of
        .iter()
        .map(|&g| u32::from(groups[g as usize].in_norm))
        .collect()
}
