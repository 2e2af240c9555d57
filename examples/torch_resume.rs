//! Checkpoints for a resume in PyTorch: every rule PyTorch has (its representative example,
//! `RuleConfig::examples()[0]`) takes 7 clipped steps over two tensors on the best adapter,
//! is saved to `DIR/<rule>.safetensors`, then takes an 8th; `DIR/<rule>.json` holds the
//! parameters before and after the 8th and its gradient. `scripts/check_torch_resume.py
//! DIR` (needs torch and safetensors) converts each file with `scripts/checkpoint_torch.py
//! to-torch`, loads it into `torch.optim.<rule>` and takes the 8th step there: the two
//! must agree to a few ulp.
//!
//!     cargo run --release --example torch_resume -- out/torch_resume
//!     python3 scripts/check_torch_resume.py out/torch_resume

use std::path::{Path, PathBuf};

use clipstep::{Context, Optimizer, RuleConfig, RuleVisitor, StepOptions, TensorSpec};

/// The rules whose names are `torch.optim` classes (not Optax's Lion, LARS and LAMB, nor
/// bitsandbytes' AdamW8bit, nor Adafactor, whose checkpoint holds its factored states one
/// value per element, not in PyTorch's row and column shapes, nor Muon, which refuses this
/// example's bias vector and whose torch step is held to fixtures in `tests/muon.rs`).
fn pytorchs(name: &str) -> bool {
    !["Lion", "LARS", "LAMB", "AdamW8bit", "Adafactor", "Muon"].contains(&name)
}

/// Saves each PyTorch rule's checkpoint and 8th step into `dir`.
struct Resume {
    ctx: Context,
    dir: PathBuf,
    result: clipstep::Result<Vec<&'static str>>,
}

impl Resume {
    fn save<C: RuleConfig>(&self) -> clipstep::Result<()> {
        let specs = [TensorSpec::new("w", [3, 5]), TensorSpec::new("b", [5])];
        let mut set = self.ctx.param_set(&specs)?;
        let n = set.numel() as usize;
        set.upload_params(&(0..n).map(|i| (i as f32 * 0.61).sin()).collect::<Vec<_>>())?;
        let grad = |s: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 3 + s) as f32 * 0.29).cos() * (1.0 + i as f32 * 0.1))
                .collect()
        };
        let mut opt = C::examples().remove(0).build(&set)?;
        let options = StepOptions {
            clip: clipstep::Clip::GlobalNorm {
                max_norm: 5.0,
                norm: clipstep::Norm::L2,
            },
            ..Default::default()
        };
        for s in 0..7 {
            set.upload_grads(&grad(s))?;
            opt.step(&mut set, &options)?;
        }
        opt.states()
            .save_to(self.dir.join(format!("{}.safetensors", C::NAME)))?;
        let before = set.download_params()?;
        // The 8th step unclipped: PyTorch's optimizer step alone.
        set.upload_grads(&grad(7))?;
        opt.step(&mut set, &StepOptions::default())?;
        let after = set.download_params()?;
        let record = serde_json::json!({ "before": before, "grad": grad(7), "after": after });
        std::fs::write(
            self.dir.join(format!("{}.json", C::NAME)),
            record.to_string(),
        )?;
        Ok(())
    }
}

impl RuleVisitor for Resume {
    fn visit<C: RuleConfig>(&mut self) {
        if !pytorchs(C::NAME) || self.result.is_err() {
            return;
        }
        let saved = self.save::<C>();
        self.result = match (std::mem::replace(&mut self.result, Ok(Vec::new())), saved) {
            (Ok(mut names), Ok(())) => {
                names.push(C::NAME);
                Ok(names)
            }
            (_, Err(e)) | (Err(e), _) => Err(e),
        };
    }
}

/// Writes every PyTorch rule's files into `dir`; returns the rules' names.
pub fn run(dir: &Path) -> clipstep::Result<Vec<&'static str>> {
    std::fs::create_dir_all(dir)?;
    let mut resume = Resume {
        ctx: Context::new()?,
        dir: dir.to_path_buf(),
        result: Ok(Vec::new()),
    };
    clipstep::for_each_rule(&mut resume);
    resume.result
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "out/torch_resume".into());
    let names = run(Path::new(&dir))?;
    println!(
        "wrote {} checkpoints to {dir}: {}",
        names.len(),
        names.join(", ")
    );
    Ok(())
}
