//! [`Built`]: the clipstep side of a [`crate::BurnOptimizer`], a parameter set over burn's
//! buffers and its optimizer, built once and then moved ([`Built::bind`]) as burn moves the
//! tensors.

use std::collections::HashMap;

use clipstep::{ArenaOptions, BufferRange, Context, ExternalTensor, Optimizer, ParamSet};

use crate::collect::Visited;
use crate::error::{Error, Result};

/// Builds the clipstep optimizer for a parameter set, given the tensors of each burn
/// group (called when the set is built).
pub(crate) type Factory =
    Box<dyn Fn(&ParamSet, &[Vec<String>]) -> clipstep::Result<Box<dyn Optimizer + Send>> + Send>;

/// The clipstep set and optimizer, and where each tensor is.
pub(crate) struct Built {
    pub set: ParamSet,
    pub opt: Box<dyn Optimizer + Send>,
    /// The gradients' home: a step whose gradients cannot be read in place copies them here.
    pub grads: wgpu::Buffer,
    /// Per parameter, in visiting order: its name, shape, where its parameters are, its
    /// gradient's offset in `grads`.
    pub placement: Vec<Placed>,
    /// Per parameter, in visiting order: its clipstep parameter group.
    pub group_of: Vec<usize>,
    /// Per clipstep group: its rate as a multiple of burn's (the group's configured rate
    /// over the reference group's).
    pub ratios: Vec<f64>,
    /// Per clipstep group: the rate set for the next step (NaN: unknown, after a load).
    pub rates: Vec<f64>,
}

pub(crate) struct Placed {
    pub name: String,
    pub shape: Vec<usize>,
    pub params: BufferRange,
    pub grad_offset: u64,
}

impl Built {
    /// A set over the `visited` tensors (gradients in a fresh home buffer) and the
    /// optimizer `factory` builds for it with the burn groups `partition`.
    pub fn new(
        ctx: &Context, factory: &Factory, visited: &[Visited], partition: &[Vec<String>],
    ) -> Result<Built> {
        let (device, _) = ctx.device_queue().ok_or(Error::NoDevice)?;
        let align = u64::from(device.limits().min_storage_buffer_offset_alignment).max(256);
        let mut placement = Vec::with_capacity(visited.len());
        let mut at = 0u64;
        for v in visited {
            placement.push(Placed {
                name: v.name.clone(),
                shape: v.shape.clone(),
                params: v.params.clone(),
                grad_offset: at,
            });
            // Whole vec4s (what clipstep binds), then the next offset on the alignment.
            at += (16 * numel(&v.shape).div_ceil(4))
                .max(16)
                .next_multiple_of(align);
        }
        let grads = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("clipstep-burn gradients"),
            size: at.max(align),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let external = placement
            .iter()
            .map(|p| ExternalTensor {
                name: p.name.clone(),
                shape: p.shape.clone(),
                params: p.params.clone(),
                grads: BufferRange {
                    buffer: grads.clone(),
                    offset: p.grad_offset,
                },
            })
            .collect();
        let options = ArenaOptions {
            external,
            ..Default::default()
        };
        let set = ParamSet::new(ctx, &[], options)?;
        let mut opt = factory(&set, partition)?;
        let groups = opt.groups();
        let index: HashMap<&str, usize> = visited
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.as_str(), i))
            .collect();
        let mut group_of = vec![0; visited.len()];
        let mut configured = Vec::with_capacity(groups.len());
        for g in 0..groups.len() {
            configured.push(groups.learning_rate(g)?);
            for name in groups.tensors(g)? {
                if let Some(&i) = index.get(name.as_str()) {
                    group_of[i] = g;
                }
            }
        }
        // The reference: the first group's rate, or the first non-zero one.
        let reference = configured.iter().copied().find(|&r| r > 0.0);
        let ratios = configured
            .iter()
            .map(|&r| reference.map_or(0.0, |base| r / base))
            .collect();
        Ok(Built {
            set,
            opt,
            grads,
            placement,
            group_of,
            ratios,
            rates: configured,
        })
    }

    /// Loads checkpoint `bytes` into the optimizer (the group rates it restores are set
    /// again at the next step).
    pub fn load(&mut self, bytes: &[u8], options: &clipstep::LoadOptions) -> Result<()> {
        self.opt.checkpoint().load_with(bytes, options)?;
        self.rates.fill(f64::NAN);
        Ok(())
    }

    /// Whether `visited` are this set's tensors (names and shapes, in order).
    pub fn fits(&self, visited: &[Visited]) -> bool {
        self.placement.len() == visited.len()
            && self
                .placement
                .iter()
                .zip(visited)
                .all(|(p, v)| p.name == v.name && p.shape == v.shape)
    }

    /// Moves the set to where `visited` are: parameters where burn has them, gradients in
    /// place (`in_place`) or in the home buffer. A placement seen lately costs a lookup,
    /// another a table rebuild; [`clipstep::Error::SplitPool`] (or another rebind error)
    /// when it does not fit this set's pools, and then nothing moved.
    pub fn bind(&mut self, visited: &[Visited], in_place: bool) -> Result<()> {
        let home = &self.grads;
        let moves = visited.iter().zip(&self.placement).map(|(v, p)| {
            let grads = if in_place {
                v.grad.clone()
            } else {
                BufferRange {
                    buffer: home.clone(),
                    offset: p.grad_offset,
                }
            };
            (v.name.as_str(), v.params.clone(), grads)
        });
        self.set.rebind_externals(moves)?;
        for (p, v) in self.placement.iter_mut().zip(visited) {
            p.params = v.params.clone();
        }
        Ok(())
    }

    /// Sets each clipstep group's rate for the next step: burn's rate for the group's
    /// tensors (one rate per group: [`Error::GroupRate`] naming the tensor that differs)
    /// times the group's ratio.
    pub fn set_rates(&mut self, visited: &[Visited]) -> Result<()> {
        let mut burn: Vec<Option<usize>> = vec![None; self.ratios.len()];
        for (i, v) in visited.iter().enumerate() {
            let g = self.group_of[i];
            match burn[g] {
                None => burn[g] = Some(i),
                Some(first) if visited[first].lr != v.lr => {
                    return Err(Error::GroupRate {
                        name: v.name.clone(),
                        lr: v.lr,
                        other: visited[first].name.clone(),
                        other_lr: visited[first].lr,
                    })
                }
                Some(_) => {}
            }
        }
        let mut groups = self.opt.groups();
        for (g, first) in burn.iter().enumerate() {
            let Some(&first) = first.as_ref() else {
                continue;
            };
            let rate = visited[first].lr * self.ratios[g];
            if rate != self.rates[g] {
                groups.set_learning_rate(g, rate)?;
                self.rates[g] = rate;
            }
        }
        Ok(())
    }
}

/// Elements of `shape`.
pub(crate) fn numel(shape: &[usize]) -> u64 {
    shape.iter().product::<usize>() as u64
}
