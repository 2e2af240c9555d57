//! What clipstep's CLI, tests and examples share, outside the library: the verification
//! harness (`clipstep verify`, `tests/verify.rs`), the bandwidth bench (`clipstep bench`,
//! `tests/bench.rs`), the soak run (`clipstep soak`, `tests/soak.rs`), and the examples'
//! charts, GPU plumbing and model. Public API of clipstep only. Not published: a dev
//! dependency of clipstep and clipstep-burn, and the home of the `clipstep` binary.

pub mod bench;
pub mod gpu;
pub mod harness;
pub mod mlp;
pub mod soak;
pub mod support;
