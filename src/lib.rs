//! kubectl-azflux: diagnose and fix Azure workload identity for Flux.
//!
//! The pipeline: `gather` (all I/O) builds a plain-data [`model::Snapshot`]; `checks` are pure
//! functions of it that produce findings with machine-readable fixes; `render` turns the
//! diagnosis into text or JSON. The same checks run on a live cluster, on manifests and on test
//! fixtures.

pub mod apply;
pub mod azure;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod gather;
pub mod kubeconfig;
pub mod model;
pub mod plan;
pub mod plugin;
pub mod render;
pub mod resolve;
pub mod scrub;
pub mod wiring;
