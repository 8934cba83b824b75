//! Renderers: a doctor report as text for people or as versioned JSON for machines. They write
//! to the writer they are given and decide nothing about exit codes.

pub mod chain;
pub mod ci;
pub mod json;
pub mod text;

use crate::checks::Diagnosis;
use crate::model::{Snapshot, Source};
use crate::resolve::Resolved;

/// Everything a renderer shows: the diagnosis plus where it came from.
#[derive(Debug, Clone)]
pub struct Report {
    pub context: Option<String>,
    pub mode: &'static str,
    pub inputs: Vec<String>,
    /// How the inputs were read and what was left out of them.
    pub input_notes: Vec<String>,
    pub flux_namespace: String,
    pub flux_version: Option<String>,
    /// What doctor found about each Flux controller, for the JSON report.
    pub controllers: Vec<serde_json::Value>,
    /// Each Azure-using object's resolved path, for the JSON report.
    pub paths: Vec<PathEntry>,
    pub diagnosis: Diagnosis,
    /// Set when the cluster could not be reached: the report then covers the local side only.
    pub error: Option<String>,
    /// The one command that fixes every finding `enable` can fix, when there is one.
    pub fix_all: Option<FixAll>,
    /// Where each object of the manifests was read.
    pub origins: std::collections::BTreeMap<crate::model::ObjectRef, crate::model::Origin>,
    /// Each Azure-using object's chain to Azure, in the order of `paths`.
    pub chains: Vec<chain::Chain>,
}

/// One Azure-using object's resolved path, kept typed: the JSON report turns each into a JSON
/// value only as it writes it, so a cluster's worth of paths is never held as JSON at once.
#[derive(Debug, Clone)]
pub struct PathEntry {
    pub path: crate::resolve::UsePath,
    pub object: crate::model::ObjectRef,
    pub api_version: String,
}

impl PathEntry {
    /// The path as the JSON report shows it.
    pub fn value(&self) -> serde_json::Value {
        let mut path = serde_json::to_value(&self.path).unwrap_or_default();
        path["object"] = serde_json::json!(self.object);
        path["apiVersion"] = serde_json::json!(self.api_version);
        path
    }
}

/// A command that fixes several findings at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixAll {
    pub command: String,
    /// The IDs of the checks whose findings it fixes.
    pub fixes: Vec<&'static str>,
}

/// `enable` fitted to the mode: the extension's settings for the AKS extension, else
/// `enable` live or `--gitops` for manifests, with the wiring mode the controllers have.
fn fix_all(snapshot: &Resolved, diagnosis: &Diagnosis) -> Option<FixAll> {
    use crate::model::azure_use::WiringMode;
    let mut fixes: Vec<&'static str> = diagnosis
        .findings
        .iter()
        .filter(|f| crate::plan::FIXABLE.contains(&f.check.name))
        .map(|f| f.check.id)
        .collect();
    fixes.dedup();
    if fixes.is_empty() {
        return None;
    }
    let wirings = snapshot.wirings();
    if wirings.iter().any(|w| {
        crate::checks::owned_by_aks_extension(&w.workload.labels)
            || crate::checks::owned_by_aks_extension(&w.workload.template_labels)
    }) {
        return Some(FixAll {
            command: crate::checks::extension_identity_fix(snapshot),
            fixes,
        });
    }
    let mode = if wirings.iter().any(|w| w.mode == WiringMode::Webhook) {
        "--mode webhook "
    } else if wirings.iter().any(|w| w.mode == WiringMode::Manual) {
        "--mode manual "
    } else {
        match snapshot.webhooks.known() {
            Some(hooks) if !hooks.is_empty() => "--mode webhook ",
            Some(_) => "--mode manual ",
            None => "",
        }
    };
    // A placeholder or malformed ID is a value `enable` replaces only when told to.
    let overwrite = if diagnosis
        .findings
        .iter()
        .any(|f| f.check.name == "identity-annotation-malformed")
    {
        " --overwrite"
    } else {
        ""
    };
    let args = format!("{mode}{}{overwrite}", crate::checks::IDS);
    let operator = wirings.iter().any(|w| {
        crate::plan::reconciler(&w.workload.labels) == Some(crate::plan::Reconciler::FluxOperator)
    });
    Some(FixAll {
        command: if operator {
            crate::checks::flux_instance_fix(snapshot, &args)
        } else {
            crate::checks::enable_command(snapshot, &args)
        },
        fixes,
    })
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

/// Each controller's version, wiring mode, the flags that gate Azure features, and the
/// credential it resolves to.
fn controllers(snapshot: &Resolved) -> Vec<serde_json::Value> {
    use crate::model::version::{controller_version, feature_gates, flag_value};
    snapshot
        .wirings()
        .iter()
        .map(|w| {
            let container = w.workload.main_container();
            let flags: std::collections::BTreeMap<&str, &str> = [
                "--default-service-account",
                "--default-decryption-service-account",
                "--default-kubeconfig-service-account",
                "--no-cross-namespace-refs",
                crate::resolve::AUTOLOGIN_FLAG,
            ]
            .into_iter()
            .filter_map(|flag| {
                let c = container?;
                flag_value(c, flag)
                    .or_else(|| c.args.iter().any(|a| a == flag).then_some("true"))
                    .map(|v| (flag.trim_start_matches("--"), v))
            })
            .collect();
            serde_json::json!({
                "name": w.name(),
                "version": controller_version(w.workload).map(|v| v.to_string()),
                "fluxVersion": crate::model::version::flux_version(w.workload).map(|v| v.to_string()),
                "serviceAccount": w.workload.service_account,
                "wiring": w.mode.to_string(),
                "featureGates": container.map(feature_gates).unwrap_or_default(),
                "flags": flags,
                "objectsUsingItsIdentity": w.needed_by.len(),
                "credential": w.path.credential,
                "reason": w.path.reason,
                "startFailure": w.path.start_failure,
                "ignored": w.path.ignored,
            })
        })
        .collect()
}

/// Every Azure use with the credential its controller resolves it to.
fn paths(snapshot: &Resolved) -> Vec<PathEntry> {
    snapshot
        .uses()
        .map(|u| PathEntry {
            path: u.path.clone(),
            object: u.object.object_ref(),
            api_version: u.object.api_version.clone(),
        })
        .collect()
}

/// `text` as it may reach a terminal: control characters (C0, DEL, C1, among them ESC, BEL and
/// CR) and the bidirectional overrides that reorder what is shown are removed, and line and
/// tab breaks become spaces. A cluster, file or server chooses much of what is printed, and
/// must not get to set the terminal's title, clear its screen or move its cursor.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\t' => Some(' '),
            c if unsafe_char(c) => None,
            c => Some(c),
        })
        .collect::<String>()
        .into()
}

impl Report {
    /// The report with every string it shows made [`printable`], for the text renderer (JSON
    /// escapes control characters itself).
    #[must_use]
    pub fn printable(&self) -> Report {
        let clean = |text: &str| printable(text).into_owned();
        let mut report = self.clone();
        report.context = report.context.as_deref().map(clean);
        report.inputs = report.inputs.iter().map(|i| clean(i)).collect();
        report.input_notes = report.input_notes.iter().map(|n| clean(n)).collect();
        report.flux_namespace = clean(&report.flux_namespace);
        report.flux_version = report.flux_version.as_deref().map(clean);
        report.error = report.error.as_deref().map(clean);
        if let Some(fix_all) = &mut report.fix_all {
            fix_all.command = clean(&fix_all.command);
        }
        for result in &mut report.diagnosis.results {
            if let crate::checks::Status::Skip(reason) = &mut result.status {
                *reason = clean(reason);
            }
        }
        for finding in &mut report.diagnosis.findings {
            finding.message = clean(&finding.message);
            // A multi-line fix (a YAML snippet) keeps its lines; each is made printable.
            finding.fix = finding
                .fix
                .split('\n')
                .map(clean)
                .collect::<Vec<_>>()
                .join("\n");
            let subject = &mut finding.subject;
            subject.kind = clean(&subject.kind);
            subject.name = clean(&subject.name);
            subject.namespace = subject.namespace.as_deref().map(clean);
        }
        report
    }

    pub fn new(snapshot: &Resolved, diagnosis: Diagnosis, error: Option<String>) -> Report {
        let (context, mode, inputs) = match &snapshot.source {
            Source::Live { context, .. } => (Some(context.clone()), "live", Vec::new()),
            Source::Manifests { inputs } => (None, "manifests", inputs.clone()),
        };
        Report {
            context,
            mode,
            inputs,
            input_notes: snapshot.input_notes.clone(),
            flux_namespace: snapshot.flux_namespace.clone(),
            flux_version: flux_version(snapshot),
            controllers: controllers(snapshot),
            paths: paths(snapshot),
            fix_all: fix_all(snapshot, &diagnosis),
            chains: chain::chains(snapshot, &diagnosis),
            origins: snapshot.origins.clone(),
            diagnosis,
            error,
        }
    }
}
