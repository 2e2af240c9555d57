//! The CPU reference of each update rule with a file of its own (`<rule>.rs`, found by
//! `build.rs`: a new rule's reference needs no line elsewhere). Each file's public
//! functions are re-exported by [`crate::reference`].

include!(concat!(env!("OUT_DIR"), "/reference_rules.rs"));
