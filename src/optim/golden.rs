//! Every registered rule's CPU reference held to PyTorch's own steps: each optimizer case
//! of `fixtures/pytorch.json` (`scripts/make_fixtures.py`: PyTorch's single-tensor CPU
//! loops in float32, the states after every step) runs through the rule the registry names
//! (`RuleConfig::NAME`), its config read from PyTorch's keyword arguments over the rule's
//! defaults, so a new rule's fixtures test it with no code here.

use serde_json::Value;

use super::{rules::for_each_rule, RuleConfig, RuleVisitor, TensorStep};
use crate::reference::golden::{assert_ulps, f32s};

/// `C`'s config from PyTorch's keyword arguments `kwargs` over `C`'s defaults (PyTorch's);
/// every keyword must name a field.
fn config_of<C: RuleConfig>(kwargs: &Value) -> C {
    let mut value = serde_json::to_value(C::default()).expect("a config serializes");
    for (key, v) in kwargs.as_object().expect("kwargs is an object") {
        let field = value
            .get_mut(key)
            .unwrap_or_else(|| panic!("{}: PyTorch's keyword {key} is no config field", C::NAME));
        *field = v.clone();
    }
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {kwargs}: {e}", C::NAME))
}

/// One fixture case, run by the rule whose name it gives.
struct Case<'a> {
    case: &'a Value,
    ran: bool,
}

impl RuleVisitor for Case<'_> {
    fn visit<C: RuleConfig>(&mut self) {
        if self.case["optimizer"] != C::NAME {
            return;
        }
        self.ran = true;
        let kwargs = &self.case["kwargs"];
        let config: C = config_of(kwargs);
        let mut params = f32s(&self.case["params"]);
        let n = params.len();
        let names = config.state_names();
        let mut slots: Vec<Vec<f32>> = config.initial_state().map(|v| vec![v; n]).to_vec();
        for (k, step) in self.case["steps"].as_array().unwrap().iter().enumerate() {
            let what = format!("{} {kwargs} step {}", C::NAME, k + 1);
            let mut kept = slots.iter_mut();
            let states = names.map(|name| {
                let slot = kept.next().expect("three slots");
                name.map(|_| slot.as_mut_slice())
            });
            let grad = f32s(&step["grad"]);
            let tensor = TensorStep {
                params: &mut params,
                grads: &grad,
                shape: &[],
                states,
            };
            config.reference_step(k as u32 + 1, tensor);
            assert_ulps(&params, &f32s(&step["params"]), &format!("{what}: params"));
            let want = step["state"].as_object().unwrap();
            let mut kept_names: Vec<&str> = names.iter().flatten().copied().collect();
            kept_names.sort_unstable();
            let mut want_names: Vec<&str> = want.keys().map(String::as_str).collect();
            want_names.sort_unstable();
            assert_eq!(kept_names, want_names, "{what}: state names");
            for (slot, name) in names.iter().enumerate() {
                let Some(name) = name else { continue };
                let values = f32s(&want[*name]);
                assert_ulps(&slots[slot], &values, &format!("{what}: {name}"));
                // The next step starts from PyTorch's state, so errors do not accumulate.
                slots[slot] = values;
            }
            params = f32s(&step["params"]);
        }
    }
}

/// Each step of each PyTorch optimizer case, started from PyTorch's parameters and states
/// before it, lands within a reference step's distance of PyTorch's after it.
#[test]
fn every_rule_steps_as_pytorch() {
    let text = include_str!("../../fixtures/pytorch.json");
    let fixtures: Value = serde_json::from_str(text).expect("fixtures/pytorch.json parses");
    for case in fixtures["optimizers"].as_array().unwrap() {
        let mut run = Case { case, ran: false };
        for_each_rule(&mut run);
        assert!(run.ran, "no registered rule is named {}", case["optimizer"]);
    }
}
