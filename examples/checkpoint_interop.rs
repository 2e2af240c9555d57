//! A checkpoint for other tools: trains Adam for three steps over tensors with dotted
//! names, a scalar and an empty tensor, in two parameter groups (the encoder's and the
//! temperature's with amsgrad, so only these tensors keep `max_exp_avg_sq`, as in
//! PyTorch's state dict), saves
//! it (safetensors, PyTorch's state names), and writes what it saved to `expected.json`
//! beside it, so
//! `scripts/check_checkpoint.py DIR` can read the file with Python's safetensors package
//! and numpy and hold it to the same names, shapes and bits (CI runs both).
//!
//!     cargo run --release --example checkpoint_interop -- out/interop

use std::path::Path;

use clipstep::{Adam, AdamConfig, Context, Optimizer, ParamGroup, StepOptions, TensorSpec};

/// The tensors: names as a framework spells them, shapes of every rank the format carries.
fn specs() -> Vec<TensorSpec> {
    vec![
        TensorSpec::new("encoder.layer.0.weight", [3, 5]),
        TensorSpec::new("encoder.layer.0.bias", [5]),
        TensorSpec::new("temperature", Vec::<usize>::new()),
        TensorSpec::new("unused.mask", [0]),
        TensorSpec::new("head.weight", [2, 3, 4]),
    ]
}

/// Trains, saves `dir/checkpoint.safetensors` and `dir/expected.json`.
pub fn run(dir: &Path) -> clipstep::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ctx = Context::new()?;
    let mut set = ctx.param_set(&specs())?;
    let n = set.numel() as usize;
    set.upload_params(&(0..n).map(|i| (i as f32 * 0.61).sin()).collect::<Vec<_>>())?;
    let (encoder, rest): (Vec<String>, Vec<String>) = specs()
        .into_iter()
        .map(|t| t.name)
        .partition(|name| name.starts_with("encoder.") || name == "temperature");
    let amsgrad = AdamConfig {
        amsgrad: true,
        ..Default::default()
    };
    let groups = vec![
        ParamGroup::new(encoder, amsgrad),
        ParamGroup::new(rest, AdamConfig::default()),
    ];
    let mut opt = Adam::with_groups(&set, groups)?;
    for s in 0..3 {
        let grads: Vec<f32> = (0..n).map(|i| ((i * 3 + s) as f32 * 0.29).cos()).collect();
        set.upload_grads(&grads)?;
        opt.step(&mut set, &StepOptions::default())?;
    }
    opt.states().save_to(dir.join("checkpoint.safetensors"))?;
    // Per tensor, the states it keeps: each state's values over the tensors keeping it.
    let mut per_tensor = vec![serde_json::Map::new(); set.tensors().len()];
    for name in opt.states().names() {
        let keeping = opt.states().tensors(name)?;
        let all = opt.states().get(name)?;
        let mut at = 0usize;
        for (t, info) in set.tensors().iter().enumerate() {
            if keeping.contains(&info.name) {
                let len = info.numel as usize;
                per_tensor[t].insert(name.to_string(), serde_json::json!(all[at..at + len]));
                at += len;
            }
        }
    }
    let tensors: Vec<serde_json::Value> = set
        .tensors()
        .iter()
        .zip(per_tensor)
        .map(
            |(t, states)| serde_json::json!({ "name": t.name, "shape": t.shape, "states": states }),
        )
        .collect();
    let expected = serde_json::json!({
        "optimizer": "Adam",
        "step": opt.states().step_count()?,
        "torch_step": true,
        "states": opt.states().names(),
        "tensors": tensors,
    });
    std::fs::write(dir.join("expected.json"), expected.to_string())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "out/interop".into());
    run(Path::new(&dir))?;
    println!("wrote {dir}/checkpoint.safetensors and {dir}/expected.json");
    Ok(())
}
