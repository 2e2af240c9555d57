//! The update rules, one file each (`<rule>.rs`, found by `build.rs`): `rule!` declares the
//! config with PyTorch's defaults and checks, the state slots, the examples and the
//! optimizer type users name; `rule_kernel!` the [`RuleShader`] (the WGSL body under
//! `shaders/rules/`) and the uniform computed from the config, and `register`, which
//! [`for_each_rule`] calls: the one registry that the CLI's `verify` and `bench`, the test
//! matrix and clipstep-burn read. The file adds the hook to the rule's CPU reference
//! (`RuleConfig::reference_step`) and its engine `Rule` (further checks, shape bits).
//!
//! [`RuleShader`]: crate::kernels::shaders::RuleShader

include!(concat!(env!("OUT_DIR"), "/optim_rules.rs"));

#[cfg(test)]
mod tests {
    use super::shaders;
    use crate::kernels::shaders::KernelKey;
    use wgpu::naga;

    /// Every kernel of every registered rule, and every other kernel, on every part it
    /// runs with, parses and validates with naga, without any device.
    #[test]
    fn every_kernel_validates() {
        let keys = KernelKey::all(&shaders());
        assert!(keys.len() > 60, "{} kernels", keys.len());
        for kernel in keys {
            let src = kernel.source();
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{}: {}", kernel.name(), e.emit_to_string(&src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", kernel.name()));
        }
    }

    /// Pipelines are made without wgpu's zero-initialization of workgroup memory
    /// (`device::context::Pipelines`), which holds only while every kernel writes each
    /// workgroup word before an invocation reads it, or asks for it
    /// (`KernelKey::reads_zeroed_workgroup_memory`). The variables below were checked
    /// for that; a kernel declaring any other fails here until it is checked and listed.
    #[test]
    fn workgroup_memory_is_audited() {
        use std::collections::BTreeSet;
        const AUDITED: [&str; 10] = [
            "col_parts",       // factor_partials.wgsl: every lane's, before the barrier
            "flags",           // reduce.wgsl tree_reduce: every lane's, first
            "left_tile",       // matmul.wgsl: all 1,024 staged before each barrier
            "pair_sums",       // reduce_vec2.wgsl: every lane's, first
            "pairs",           // reduce.wgsl reduce_to_first_shared: every lane's, first
            "q8_max",          // q8_update.wgsl: read zeroed (reads_zeroed_workgroup_memory)
            "right_tile",      // matmul.wgsl: as left_tile
            "subgroup_totals", // reduce_first_subgroup.wgsl: every subgroup's, first
            "sums",            // reduce.wgsl tree_reduce, ns_scale.wgsl: every lane's, first
            "tile",            // factor_partials.wgsl: every row of a sweep, before reads
        ];
        let mut found = BTreeSet::new();
        for key in KernelKey::all(&shaders()) {
            for subgroups in [None, Some(8)] {
                let module = naga::front::wgsl::parse_str(&key.source_for(subgroups))
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", key.name()));
                let names: Vec<_> = module
                    .global_variables
                    .iter()
                    .filter(|(_, var)| var.space == naga::AddressSpace::WorkGroup)
                    .map(|(_, var)| var.name.clone())
                    .collect();
                let zeroed = names.contains(&Some("q8_max".to_string()));
                assert_eq!(
                    zeroed,
                    key.reads_zeroed_workgroup_memory(),
                    "{}",
                    key.name()
                );
                found.extend(names);
            }
        }
        let audited: BTreeSet<_> = AUDITED.iter().map(|n| Some(n.to_string())).collect();
        assert_eq!(found, audited);
    }

    /// Each rule's uniform has the same field names, order, offsets and size in Rust and in
    /// the WGSL generated from it, as naga lays it out in the rule's update kernel.
    #[test]
    fn every_rule_uniform_has_its_rust_layout_in_wgsl() {
        for rule in shaders() {
            use crate::kernels::shaders::{Body, StateStorage};
            let states = if rule.q8 {
                StateStorage::Q8
            } else if rule.factored {
                StateStorage::Factored
            } else {
                StateStorage::F32
            };
            let source = KernelKey::from(Body::Update(rule))
                .with_states(states)
                .source();
            let (fields, size) = (rule.uniform_layout)();
            let rust: Vec<(String, usize)> = fields
                .into_iter()
                .map(|(n, o)| (n.to_string(), o))
                .collect();
            let name = (rule.uniform)();
            let name = name
                .lines()
                .find_map(|l| l.strip_prefix("struct "))
                .and_then(|l| l.strip_suffix(" {"))
                .expect("a generated struct declaration");
            let (wgsl, span) = crate::kernels::shaders::struct_layout(&source, name)
                .unwrap_or_else(|| panic!("{}: no struct {name}", rule.name));
            assert_eq!(rust, wgsl, "{}: fields", rule.name);
            assert_eq!(size, span, "{}: size", rule.name);
        }
    }

    /// The registry visits each config once, in file order, and names no rule twice.
    #[test]
    fn the_registry_names_each_rule_once() {
        struct Names(Vec<&'static str>);
        impl crate::optim::RuleVisitor for Names {
            fn visit<C: crate::optim::RuleConfig>(&mut self) {
                self.0.push(C::NAME);
            }
        }
        let mut names = Names(Vec::new());
        super::for_each_rule(&mut names);
        let mut unique = names.0.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.0.len(), "{:?}", names.0);
        for name in [
            "SGD",
            "Adam",
            "AdamW",
            "RMSprop",
            "Adagrad",
            "Adamax",
            "Adadelta",
            "RAdam",
            "ASGD",
            "Rprop",
            "NAdam",
            "Lion",
            "LARS",
            "LAMB",
            "AdamW8bit",
        ] {
            assert!(names.0.contains(&name), "{name} in {:?}", names.0);
        }
    }
}
