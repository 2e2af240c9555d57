//! [`Built`]: the clipstep side of a [`crate::BurnOptimizer`], a parameter set over burn's
//! buffers and its optimizer, built once and then moved ([`Built::bind`]) as burn moves the
//! tensors.
//!
//! f32 parameters are clipstep external tensors, stepped in place in burn's buffers. f16 and
//! bf16 parameters are the set's own 16-bit tensors with f32 master weights (started from
//! burn's values when the set is built): each step copies burn's 16-bit gradients into the
//! set, updates the master weights, and copies their rounding into burn's parameters, all in
//! the step's command buffer ([`Built::half_copies`]).

use std::collections::HashMap;

use clipstep::{
    ArenaOptions, BufferRange, Context, Dtype, ExternalTensor, Optimizer, ParamSet, TensorSpec,
    TensorView,
};

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
    /// The f32 gradients' home: a step whose gradients cannot be read in place copies them
    /// here.
    pub grads: wgpu::Buffer,
    /// Per parameter, in visiting order: its name, shape, element type, where burn has its
    /// parameters, its gradient's offset in `grads` (f32).
    pub placement: Vec<Placed>,
    /// Per parameter, in visiting order: its clipstep parameter group.
    pub group_of: Vec<usize>,
    /// Per clipstep group: its rate as a multiple of burn's (the group's configured rate
    /// over the reference group's).
    pub ratios: Vec<f64>,
    /// Per clipstep group: the rate set for the next step (NaN: unknown, after a load).
    pub rates: Vec<f64>,
    /// Whether the next step starts the 16-bit tensors' master weights from burn's values
    /// first (a new set, a load, or the caller's request).
    pub reseed: bool,
}

pub(crate) struct Placed {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    /// f32: the set's external parameters; 16-bit: where the step writes them back.
    pub params: BufferRange,
    /// f32: the gradient's place in the home buffer (unused for 16-bit tensors, whose
    /// gradients are copied into the set).
    pub grad_offset: u64,
}

/// A device copy of whole 32-bit words (wgpu copies multiples of 4 bytes).
pub(crate) struct WordCopy {
    from: wgpu::Buffer,
    from_offset: u64,
    to: wgpu::Buffer,
    to_offset: u64,
    bytes: u64,
}

impl WordCopy {
    /// A copy of `bytes` from `from` to `to`, rounded up to whole words; `None` if an end is
    /// not word-aligned or the last word would leave a buffer.
    pub fn checked(from: &BufferRange, to: &BufferRange, bytes: u64) -> Option<WordCopy> {
        let word = wgpu::COPY_BUFFER_ALIGNMENT;
        let bytes = bytes.next_multiple_of(word);
        let fits =
            |r: &BufferRange| r.offset.is_multiple_of(word) && r.offset + bytes <= r.buffer.size();
        (fits(from) && fits(to)).then(|| WordCopy {
            from: from.buffer.clone(),
            from_offset: from.offset,
            to: to.buffer.clone(),
            to_offset: to.offset,
            bytes,
        })
    }

    /// Records `copies`; one within a buffer (which wgpu does not copy) goes through
    /// `scratch`, grown to fit when too small.
    pub fn encode_all(
        copies: &[WordCopy], device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder,
        scratch: &mut Option<wgpu::Buffer>,
    ) {
        let within = |c: &&WordCopy| c.from == c.to;
        let needed: u64 = copies.iter().filter(within).map(|c| c.bytes).sum();
        if needed > scratch.as_ref().map_or(0, wgpu::Buffer::size) {
            *scratch = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("clipstep-burn copy scratch"),
                size: needed.next_power_of_two(),
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let mut at = 0;
        for copy in copies {
            match (copy.from == copy.to, scratch.as_ref()) {
                (true, Some(hop)) => {
                    encoder.copy_buffer_to_buffer(
                        &copy.from,
                        copy.from_offset,
                        hop,
                        at,
                        copy.bytes,
                    );
                    encoder.copy_buffer_to_buffer(hop, at, &copy.to, copy.to_offset, copy.bytes);
                    at += copy.bytes;
                }
                _ => copy.encode(encoder),
            }
        }
    }

    /// Records the copy (between two buffers).
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.copy_buffer_to_buffer(
            &self.from,
            self.from_offset,
            &self.to,
            self.to_offset,
            self.bytes,
        );
    }
}

/// A step's copies of its 16-bit tensors, checked before anything is recorded.
#[derive(Default)]
pub(crate) struct HalfCopies {
    /// burn's gradients into the set's (before the step).
    pub grads_in: Vec<WordCopy>,
    /// The set's rounded master weights into burn's parameters (after it).
    pub params_out: Vec<WordCopy>,
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
        let mut half = Vec::new();
        let mut at = 0u64;
        for v in visited {
            placement.push(Placed {
                name: v.name.clone(),
                shape: v.shape.clone(),
                dtype: v.dtype,
                params: v.params.clone(),
                grad_offset: at,
            });
            if v.dtype.is_16_bit() {
                half.push(TensorSpec::new(v.name.clone(), v.shape.clone()).with_dtype(v.dtype));
                continue;
            }
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
            .filter(|p| p.dtype == Dtype::F32)
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
            master_weights: true,
            ..Default::default()
        };
        let set = ParamSet::new(ctx, &half, options)?;
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
            reseed: true,
        })
    }

    /// Loads checkpoint `bytes` into the optimizer (the group rates it restores are set
    /// again at the next step, and the master weights started again from the model's).
    pub fn load(&mut self, bytes: &[u8], options: &clipstep::LoadOptions) -> Result<()> {
        self.opt.checkpoint().load_with(bytes, options)?;
        self.rates.fill(f64::NAN);
        self.reseed = true;
        Ok(())
    }

    /// Whether `visited` are this set's tensors (names, shapes and types, in order).
    pub fn fits(&self, visited: &[Visited]) -> bool {
        self.placement.len() == visited.len()
            && self
                .placement
                .iter()
                .zip(visited)
                .all(|(p, v)| p.name == v.name && p.shape == v.shape && p.dtype == v.dtype)
    }

    /// When [`Built::reseed`] asks for it, starts the f32 master weights of the set's 16-bit
    /// tensors at burn's values (where [`Built::bind`] last placed them): burn's bits copied on
    /// the device into the set's gradients, read back widened (a host sync) and written as the
    /// parameters (the master their exact value, the 16-bit copy the same bits).
    pub fn seed_master_weights(&mut self, ctx: &Context) -> Result<()> {
        if !self.reseed {
            return Ok(());
        }
        let half: Vec<&Placed> = self
            .placement
            .iter()
            .filter(|p| p.dtype.is_16_bit())
            .collect();
        if !half.is_empty() {
            let (device, queue) = ctx.device_queue().ok_or(Error::NoDevice)?;
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("clipstep-burn master weights"),
            });
            for p in &half {
                for copy in word_copies(&p.name, &p.params, &self.set.grad_views(&p.name)?, true)? {
                    copy.encode(&mut encoder);
                }
            }
            queue.submit([encoder.finish()]);
            for p in &half {
                let values = self.set.download_grad(&p.name)?;
                self.set.upload_param(&p.name, &values)?;
            }
        }
        self.reseed = false;
        Ok(())
    }

    /// The copies a step over `visited` makes of its 16-bit tensors (burn's gradients in,
    /// the rounded master weights out to burn's parameters), every range checked first
    /// ([`Error::Unsupported`] for one clipstep cannot copy in whole words; nothing recorded).
    pub fn half_copies(&self, visited: &[Visited]) -> Result<HalfCopies> {
        let mut copies = HalfCopies::default();
        for v in visited.iter().filter(|v| v.dtype.is_16_bit()) {
            let grads = self.set.grad_views(&v.name)?;
            copies
                .grads_in
                .extend(word_copies(&v.name, &v.grad, &grads, true)?);
            let params = self.set.param_views(&v.name)?;
            copies
                .params_out
                .extend(word_copies(&v.name, &v.params, &params, false)?);
        }
        Ok(copies)
    }

    /// Moves the set to where `visited` are: parameters where burn has them, gradients in
    /// place (`in_place`) or in the home buffer. A placement seen lately costs a lookup,
    /// another a table rebuild; [`clipstep::Error::SplitPool`] (or another rebind error)
    /// when it does not fit this set's pools, and then nothing moved.
    pub fn bind(&mut self, visited: &[Visited], in_place: bool) -> Result<()> {
        let home = &self.grads;
        let f32_tensors = visited.iter().zip(&self.placement);
        let f32_tensors = f32_tensors.filter(|(v, _)| v.dtype == Dtype::F32);
        let moves = f32_tensors.map(|(v, p)| {
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

/// The copies between a 16-bit tensor in burn's buffer (`burn`: its first element) and its
/// pieces in a clipstep set (`views`), into the set (`into_set`) or out of it. In whole
/// 32-bit words: an odd-length tensor's last word carries two bytes past its end (padding in
/// the set, and in burn's buffer the padding cubecl leaves after an allocation, which it
/// aligns); [`Error::Unsupported`] if burn's range is not word-aligned or its last word
/// would leave burn's buffer.
fn word_copies(
    name: &str, burn: &BufferRange, views: &[TensorView<'_>], into_set: bool,
) -> Result<Vec<WordCopy>> {
    let mut copies = Vec::with_capacity(views.len());
    for view in views {
        if view.len == 0 {
            continue;
        }
        let at = burn.offset + 2 * view.tensor_offset;
        let burn_end = BufferRange {
            buffer: burn.buffer.clone(),
            offset: at,
        };
        let set_end = BufferRange {
            buffer: view.buffer.clone(),
            offset: view.offset,
        };
        let (from, to) = match into_set {
            true => (&burn_end, &set_end),
            false => (&set_end, &burn_end),
        };
        let Some(copy) = WordCopy::checked(from, to, 2 * view.len) else {
            return Err(Error::Unsupported {
                name: name.to_string(),
                reason: format!(
                    "its 16-bit elements at byte {at} of a burn buffer of {} bytes cannot be \
                     copied in whole 32-bit words",
                    burn.buffer.size()
                ),
            });
        };
        copies.push(copy);
    }
    Ok(copies)
}

/// Elements of `shape`.
pub(crate) fn numel(shape: &[usize]) -> u64 {
    shape.iter().product::<usize>() as u64
}
