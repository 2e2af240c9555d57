//! Saving and restoring a [`BurnOptimizer`]'s state: clipstep checkpoints, checked against
//! the model (and the rule, where known) when loaded.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use clipstep::{CheckpointSummary, LoadOptions, MissingTensors, UnexpectedTensors};

use crate::collect::param_name;
use crate::error::{Error, Result};
use crate::optimizer::BurnOptimizer;

impl BurnOptimizer {
    /// The optimizer's state as a clipstep checkpoint (config, step count, every state
    /// tensor by parameter path; a host sync). Before the first step: what
    /// [`BurnOptimizer::load`] was given, if anything.
    pub fn save(&self) -> Result<Vec<u8>> {
        match (&self.built, &self.pending_state) {
            (Some(built), _) => Ok(built.opt.states().save()?),
            (None, Some(bytes)) => Ok(bytes.clone()),
            (None, None) => Err(Error::Clipstep(clipstep::Error::Checkpoint(
                "nothing to save before the first step".into(),
            ))),
        }
    }

    /// Restores [`BurnOptimizer::save`]'s bytes for `module` (now, or at the first step if
    /// none was taken yet; tensors matched by path). Checked here, before anything changes:
    /// the file parses, was written by this optimizer's rule (where known: `rule`, `adamw`,
    /// `from_burn`), and each of its tensors is a float parameter of `module` of the same
    /// shape ([`Error::Checkpoint`] naming the first that is not: a checkpoint of a larger
    /// model). A parameter absent from the file starts with fresh state.
    pub fn load<M: Module>(&mut self, module: &M, bytes: &[u8]) -> Result<()> {
        let summary = CheckpointSummary::read(bytes)?;
        if let Some(rule) = self.rule_name {
            if summary.optimizer != rule {
                return Err(Error::Checkpoint(format!(
                    "it was written by {}, and this optimizer steps {rule}",
                    summary.optimizer
                )));
            }
        }
        let mut shapes = Shapes::default();
        module.visit(&mut shapes);
        for (name, shape) in &summary.tensors {
            match shapes.found.get(name) {
                None => {
                    return Err(Error::Checkpoint(format!(
                        "it holds state for {name:?}, which the model has no float parameter \
                         of (a checkpoint of another model?)"
                    )))
                }
                Some(ours) if ours != shape => {
                    return Err(Error::Checkpoint(format!(
                        "it holds {name:?} of shape {shape:?}, which is {ours:?} in the model"
                    )))
                }
                Some(_) => {}
            }
        }
        match &mut self.built {
            Some(built) => {
                let options = LoadOptions {
                    missing: MissingTensors::FreshState,
                    unexpected: UnexpectedTensors::Error,
                };
                built.load(bytes, &options)
            }
            None => {
                self.pending_state = Some(bytes.to_vec());
                Ok(())
            }
        }
    }
}

/// The name and shape of every float parameter of a module.
#[derive(Default)]
struct Shapes {
    path: Vec<String>,
    found: HashMap<String, Vec<usize>>,
}

impl ModuleVisitor for Shapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = param_name(&self.path, param.id);
        self.found.insert(name, param.shape().dims::<D>().to_vec());
    }
}
