//! [`SharedOptimizer`]: one [`BurnOptimizer`] for every clone of a model, the way into
//! burn's `Learner` (through `TrainStep::optimize`).

use std::sync::{Arc, Mutex, MutexGuard};

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::Module;
use burn::optim::GradientsParams;

use crate::error::Error;
use crate::optimizer::BurnOptimizer;

/// Called with the error of a failed step (e.g. to stop burn's `Learner`:
/// `move |e| interrupter.stop(Some(&e.to_string()))`).
type OnError = Box<dyn Fn(&Error) + Send>;

/// A [`BurnOptimizer`] behind a shared handle: a field of the model
/// (`#[module(skip)] clipstep: Option<SharedOptimizer>`) that every clone of the model
/// shares, so burn's `Learner`, which clones the model before each step and hands
/// `TrainStep::optimize` no way to return an error, can step with clipstep:
///
/// ```rust,ignore
/// fn optimize(self, optim: &mut ModuleOptimizer, lr: ModuleLearningRate, grads: GradientsParams) -> Self {
///     match self.clipstep.clone() {
///         Some(clipstep) => clipstep.optimize(lr, self, grads),
///         None => optim.step(lr, self, grads),          // burn's own optimizer
///     }
/// }
/// ```
///
/// A failed step leaves the parameters and the state as they were, keeps its error
/// ([`SharedOptimizer::take_error`]) and calls [`SharedOptimizer::on_error`]'s callback;
/// until the error is taken every later step is refused the same way (the module is
/// returned as it came), so training never goes on silently past a failure.
#[derive(Clone)]
pub struct SharedOptimizer {
    inner: Arc<Mutex<Shared>>,
}

struct Shared {
    optim: BurnOptimizer,
    error: Option<Error>,
    on_error: Option<OnError>,
}

impl SharedOptimizer {
    /// Shares `optim` between the clones of a model.
    pub fn new(optim: BurnOptimizer) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Shared {
                optim,
                error: None,
                on_error: None,
            })),
        }
    }

    /// Calls `callback` with the error of each failed step (the first one, and nothing for
    /// the steps refused after it): with burn's `Learner`, stop the training through its
    /// `Interrupter` (`SupervisedTraining::interrupter()`).
    /// Set on the shared optimizer: every clone of the handle sees it; a second call
    /// replaces the first.
    pub fn on_error(&self, callback: impl Fn(&Error) + Send + 'static) {
        self.lock().on_error = Some(Box::new(callback));
    }

    /// One step of the shared optimizer ([`BurnOptimizer::step`]) for burn's
    /// `TrainStep::optimize`: returns the stepped module, or, when the step fails or an
    /// earlier error was not taken, the module with its parameters as they were.
    pub fn optimize<M: Module>(
        &self, lr: impl Into<ModuleLearningRate>, module: M, grads: GradientsParams,
    ) -> M {
        let mut shared = self.lock();
        if shared.error.is_some() {
            return module;
        }
        let (module, result) = shared.optim.step_keeping(lr, module, grads);
        if let Err(error) = result {
            if let Some(callback) = &shared.on_error {
                callback(&error);
            }
            shared.error = Some(error);
        }
        module
    }

    /// The error of the failed step, if one failed since the last call; taking it lets
    /// later steps run again.
    pub fn take_error(&self) -> Option<Error> {
        self.lock().error.take()
    }

    /// Runs `f` on the optimizer (its report, `builds()`, `save()`, `load(..)`, options).
    pub fn with<R>(&self, f: impl FnOnce(&mut BurnOptimizer) -> R) -> R {
        f(&mut self.lock().optim)
    }

    /// The shared state; a panic in another holder (poisoning) leaves it usable, since
    /// a step changes nothing until its command buffer is submitted.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for SharedOptimizer {
    /// burn's `Module` derive prints a skipped field with `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // try_lock: a model printed while its optimizer steps must not deadlock.
        match self.inner.try_lock() {
            Ok(shared) => f
                .debug_struct("SharedOptimizer")
                .field("optim", &shared.optim)
                .field("error", &shared.error)
                .finish(),
            Err(_) => f.write_str("SharedOptimizer { <in use> }"),
        }
    }
}
