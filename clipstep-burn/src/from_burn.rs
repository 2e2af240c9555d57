//! [`BurnOptimizer::from_burn`]: the optimizer a burn `AdamWConfig` describes, with burn's
//! hyperparameters (its defaults differ from PyTorch's), so switching keeps the run.

use burn::optim::AdamWConfig as BurnAdamWConfig;
use clipstep::{AdamWConfig, Clip, Norm, StepOptions};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::optimizer::BurnOptimizer;

impl BurnOptimizer {
    /// clipstep's AdamW with the hyperparameters of burn's `config`, burn's defaults
    /// included (eps 1e-5, weight decay 1e-4, where PyTorch's and clipstep's
    /// `AdamWConfig::default()` have 1e-8 and 1e-2): β1, β2, ε, weight decay and amsgrad
    /// carry over; burn's `grad_clipping` becomes clipstep's per-tensor norm clip
    /// (`Norm(max)`: [`BurnOptimizer::with_per_tensor_clip`], L2) or value clip (`Value(c)`:
    /// `Clip::Value`). The rule is the same (decoupled decay `θ ← θ(1 − lr·λ)`, then
    /// `θ ← θ − lr·m̂/(√v̂ + ε)`); the learning rate is burn's, given at each step.
    /// `cautious_weight_decay`, which clipstep does not implement, is [`Error::Config`].
    pub fn from_burn(ctx: &clipstep::Context, config: &BurnAdamWConfig) -> Result<Self> {
        let fields = serde_json::to_value(config)
            .map_err(|e| Error::Config(format!("AdamWConfig does not serialize: {e}")))?;
        let number = |key: &str| {
            fields.get(key).and_then(Value::as_f64).ok_or_else(|| {
                Error::Config(format!("AdamWConfig has no number {key:?}: {fields}"))
            })
        };
        let flag = |key: &str| fields.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("cautious_weight_decay") {
            return Err(Error::Config(
                "cautious_weight_decay is not implemented by clipstep's AdamW; turn it off".into(),
            ));
        }
        let ours = AdamWConfig {
            betas: (number("beta_1")?, number("beta_2")?),
            eps: number("epsilon")?,
            weight_decay: number("weight_decay")?,
            amsgrad: flag("amsgrad"),
            ..Default::default()
        };
        let mut optimizer = BurnOptimizer::adamw(ctx, ours);
        match fields.get("grad_clipping") {
            None | Some(Value::Null) => {}
            Some(clip) => match (clip.get("Norm"), clip.get("Value")) {
                (Some(max), None) => {
                    let max = max.as_f64().ok_or_else(|| bad_clip(clip))? as f32;
                    optimizer = optimizer.with_per_tensor_clip(Some((max, Norm::L2)));
                }
                (None, Some(value)) => {
                    let clip_value = value.as_f64().ok_or_else(|| bad_clip(clip))? as f32;
                    optimizer = optimizer.with_options(StepOptions {
                        clip: Clip::Value { clip_value },
                        ..Default::default()
                    });
                }
                _ => return Err(bad_clip(clip)),
            },
        }
        Ok(optimizer)
    }
}

fn bad_clip(clip: &Value) -> Error {
    Error::Config(format!("grad_clipping {clip} is neither Norm nor Value"))
}
