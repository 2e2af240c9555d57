//! Generates the rule registry from the folders that hold one file per rule, so a new rule
//! is its files and nothing else: no list to edit.
//!
//! - `src/optim/rules/<rule>.rs` (the rule's config, uniform, shader and optimizer type):
//!   `$OUT_DIR/optim_rules.rs` declares each as a module, re-exports its public items, and
//!   lists each module's `register` in [`for_each_rule`] and its shader in `shaders`.
//! - `src/reference/rules/<rule>.rs` (the rule's CPU reference): `$OUT_DIR/reference_rules.rs`
//!   declares each as a module and re-exports its public items.
//!
//! Files are taken in name order, so the registry's order does not depend on the file system.

use std::fs;
use std::path::{Path, PathBuf};

/// The `.rs` files of `dir` but `mod.rs`, by file stem, sorted.
fn rule_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .filter_map(|path| {
            let stem = path.file_stem()?.to_str()?.to_string();
            (stem != "mod").then_some((stem, path))
        })
        .collect();
    files.sort();
    files
}

/// One module per file, each at its own path, its public items re-exported.
fn modules(files: &[(String, PathBuf)]) -> String {
    let mut out = String::new();
    for (name, path) in files {
        out.push_str(&format!(
            "#[path = {path:?}]\nmod {name};\n#[allow(unused_imports, ambiguous_glob_reexports)]\npub use {name}::*;\n"
        ));
    }
    out
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));

    let rules_dir = root.join("src/optim/rules");
    println!("cargo:rerun-if-changed={}", rules_dir.display());
    let rules = rule_files(&rules_dir);
    let mut text = modules(&rules);
    text.push_str(
        "\n/// Calls `visitor.visit::<C>()` for the config `C` of every registered rule, in the\n\
         /// order of their files' names (`src/optim/rules/`).\n\
         pub fn for_each_rule(visitor: &mut impl crate::optim::RuleVisitor) {\n",
    );
    for (name, _) in &rules {
        text.push_str(&format!("    {name}::register(visitor);\n"));
    }
    text.push_str(
        "}\n\n/// Every registered rule's shaders (one per file; a file may hold several \
         configs of one shader).\n\
         #[cfg(test)]\n\
         pub(crate) fn shaders() -> Vec<&'static crate::kernels::shaders::RuleShader> {\n    vec![\n",
    );
    for (name, _) in &rules {
        text.push_str(&format!("        &{name}::SHADER,\n"));
    }
    text.push_str("    ]\n}\n");
    fs::write(out.join("optim_rules.rs"), text).expect("OUT_DIR is writable");

    let reference_dir = root.join("src/reference/rules");
    println!("cargo:rerun-if-changed={}", reference_dir.display());
    let references = rule_files(&reference_dir);
    fs::write(out.join("reference_rules.rs"), modules(&references)).expect("OUT_DIR is writable");
}
