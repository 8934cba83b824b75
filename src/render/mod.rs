//! Renderers: a doctor report as text for people or as versioned JSON for machines. They write
//! to the writer they are given and decide nothing about exit codes.

pub mod json;
pub mod text;

use crate::checks::Diagnosis;
use crate::model::{Snapshot, Source};

/// Everything a renderer shows: the diagnosis plus where it came from.
#[derive(Debug, Clone)]
pub struct Report {
    pub context: Option<String>,
    pub mode: &'static str,
    pub inputs: Vec<String>,
    pub flux_namespace: String,
    pub flux_version: Option<String>,
    pub diagnosis: Diagnosis,
    /// Set when the cluster could not be reached: the report then covers the local side only.
    pub error: Option<String>,
}

/// The Flux version the controllers report: Flux's `app.kubernetes.io/version` label, agreed
/// on by the controllers.
pub fn flux_version(snapshot: &Snapshot) -> Option<String> {
    let controllers = snapshot.controllers.known()?;
    let mut versions: Vec<&str> = controllers
        .iter()
        .filter_map(|w| {
            w.labels
                .get("app.kubernetes.io/version")
                .map(String::as_str)
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    match versions.as_slice() {
        [one] => Some((*one).to_string()),
        _ => None,
    }
}

impl Report {
    pub fn new(snapshot: &Snapshot, diagnosis: Diagnosis, error: Option<String>) -> Report {
        let (context, mode, inputs) = match &snapshot.source {
            Source::Live { context, .. } => (Some(context.clone()), "live", Vec::new()),
            Source::Manifests { inputs } => (None, "manifests", inputs.clone()),
        };
        Report {
            context,
            mode,
            inputs,
            flux_namespace: snapshot.flux_namespace.clone(),
            flux_version: flux_version(snapshot),
            diagnosis,
            error,
        }
    }
}
